"""Both store backends for the broker's unit tests (``store`` runs a test on each):
SQLite in a temp dir, and a fresh schema on the session's real PostgreSQL cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobtoken.broker.store import SqlStore
from support.stores import fresh_schema_dsn, open_kind


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path, str]:
    dsn = ""
    if request.param == "postgres":
        dsn = fresh_schema_dsn(request.getfixturevalue("postgres_dsn"))
    return request.param, tmp_path, dsn


@pytest.fixture
def store(store_factory: tuple[str, Path, str]) -> Iterator[SqlStore]:
    opened = open_kind(*store_factory)
    yield opened
    opened.close()
