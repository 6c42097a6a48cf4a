"""The broker's persistent state: issued tokens, jti replay, sealed connector
credentials and signing keys, and the audit chain — one schema, two backends.

Public API: :func:`open_store`, :class:`SqlStore` (the interface every backend has),
the row types, :class:`StoreError`.
"""

from __future__ import annotations

from pathlib import Path

from jobtoken.broker.store.base import GENESIS_HASH, SqlStore, StoreError
from jobtoken.broker.store.records import AuditRow, SealedRecord, SigningKeyRow, TokenRecord

__all__ = [
    "GENESIS_HASH",
    "AuditRow",
    "SealedRecord",
    "SigningKeyRow",
    "SqlStore",
    "StoreError",
    "TokenRecord",
    "open_store",
]


def open_store(kind: str, *, path: Path | None = None, dsn: str | None = None) -> SqlStore:
    """Open (and create the schema of) the configured store."""
    if kind == "sqlite":
        if path is None:
            raise StoreError("the sqlite store needs a path")
        from jobtoken.broker.store.sqlite import SqliteStore

        return SqliteStore(path)
    if kind == "postgres":
        if not dsn:
            raise StoreError("the postgres store needs a DSN (store.dsn_file or store.dsn_env)")
        from jobtoken.broker.store.postgres import PostgresStore

        return PostgresStore(dsn)
    raise StoreError(f"unknown store kind {kind!r}; use 'sqlite' or 'postgres'")
