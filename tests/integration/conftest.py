"""Fixtures for the real-process tests: a real broker process (``jobtoken broker serve``)
on a free loopback port with a fake OIDC issuer, a contacts API as its upstream
connector, and every secret in files of a temp dir; and the project's wheelhouse (the
built wheel and its dependencies), built once a session."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from support.broker_process import BrokerProcess, running_broker
from support.contacts_api import ContactsApi
from support.oidc_issuer import FakeOidcIssuer
from support.wheelhouse import build_wheelhouse


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A running broker (module-wide), with a stored credential for both connectors."""
    with (
        FakeOidcIssuer() as issuer,
        ContactsApi() as contacts,
        running_broker(tmp_path_factory.mktemp("broker"), issuer, contacts) as process,
    ):
        yield process


@pytest.fixture
def postgres_database(postgres_dsn: str) -> Iterator[str]:
    """A fresh database on the session's cluster (its DSN), dropped after the test."""
    dbname = "jt_" + secrets.token_hex(6)
    name = sql.Identifier(dbname)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
    try:
        yield make_conninfo(postgres_dsn, dbname=dbname)
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The jobtoken wheel, built from this tree, and a wheel of every dependency of
    ``jobtoken[broker,postgres]`` (pip's cache first, the registry otherwise)."""
    return build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
