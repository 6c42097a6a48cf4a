"""Stores for tests: either backend by name, and a fresh schema on a PostgreSQL cluster."""

from __future__ import annotations

import secrets
from pathlib import Path

import psycopg

from jobtoken.broker.store import SqlStore, open_store


def open_kind(kind: str, tmp_path: Path, dsn: str, *, migrate: bool = False) -> SqlStore:
    """The store of ``kind`` ("sqlite": ``tmp_path/store.db``; "postgres": ``dsn``)."""
    if kind == "sqlite":
        return open_store("sqlite", path=tmp_path / "store.db", migrate=migrate)
    return open_store("postgres", dsn=dsn, migrate=migrate)


def fresh_schema_dsn(cluster_dsn: str) -> str:
    """A DSN whose search path is a new, empty schema of the cluster's database."""
    schema = "t_" + secrets.token_hex(6)
    with psycopg.connect(cluster_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{cluster_dsn} options='-c search_path={schema}'"
