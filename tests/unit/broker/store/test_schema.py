"""Versioned migrations on both backends: an empty store is created whole, a store
from an older release is refused until migrated, a newer one is refused, and
migrating twice changes nothing."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from jobtoken.broker.store import LATEST_VERSION, StoreError
from jobtoken.broker.store.records import TOKEN_COLUMNS
from jobtoken.broker.store.schema import MIGRATIONS
from support.stores import open_kind


def _execute(kind: str, tmp_path: Path, dsn: str, statements: list[str]) -> None:
    """Run raw SQL on the store, as an older release (or a newer one) would have."""
    if kind == "sqlite":
        conn = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
        try:
            for statement in statements:
                conn.execute(statement)
        finally:
            conn.close()
    else:
        with psycopg.connect(dsn, autocommit=True) as pg:
            for statement in statements:
                pg.execute(statement)


def _versions(kind: str, tmp_path: Path, dsn: str) -> list[int]:
    query = "SELECT version FROM schema_version ORDER BY version"
    if kind == "sqlite":
        conn = sqlite3.connect(tmp_path / "store.db")
        try:
            return [row[0] for row in conn.execute(query)]
        finally:
            conn.close()
    with psycopg.connect(dsn, autocommit=True) as pg:
        return [row[0] for row in pg.execute(query).fetchall()]


def _first_release_store(kind: str, tmp_path: Path, dsn: str) -> None:
    """The schema the first release created: migration 1, and no schema_version."""
    blob = "BLOB" if kind == "sqlite" else "BYTEA"
    statements = MIGRATIONS[0].statements.format(blob=blob).split(";")
    _execute(kind, tmp_path, dsn, [s for s in statements if s.strip()])


def test_an_empty_store_is_created_at_the_latest_version(
    store_factory: tuple[str, Path, str],
) -> None:
    store = open_kind(*store_factory)
    store.close()
    assert [m.version for m in store.applied] == [m.version for m in MIGRATIONS]
    assert _versions(*store_factory) == list(range(1, LATEST_VERSION + 1))
    reopened = open_kind(*store_factory)
    reopened.close()
    assert reopened.applied == []


def test_a_store_from_the_first_release_is_refused_until_migrated(
    store_factory: tuple[str, Path, str],
) -> None:
    _first_release_store(*store_factory)
    with pytest.raises(StoreError, match=r"version 1 .* run `jobtoken broker migrate"):
        open_kind(*store_factory)
    migrated = open_kind(*store_factory, migrate=True)
    migrated.close()
    assert [m.version for m in migrated.applied] == list(range(2, LATEST_VERSION + 1))
    assert _versions(*store_factory) == list(range(1, LATEST_VERSION + 1))
    again = open_kind(*store_factory, migrate=True)
    assert again.applied == []  # idempotent
    assert again.job_ended("1", "2", "1", "") is False  # the migrated tables answer
    again.close()


def test_a_store_of_a_newer_release_is_refused(store_factory: tuple[str, Path, str]) -> None:
    open_kind(*store_factory).close()
    newer = LATEST_VERSION + 1
    _execute(*store_factory, [f"INSERT INTO schema_version VALUES ({newer}, 0)"])  # noqa: S608
    for migrate in (False, True):
        with pytest.raises(StoreError, match=f"version {newer}, newer than this broker"):
            open_kind(*store_factory, migrate=migrate)


def test_processes_opening_one_empty_store_at_once_apply_each_migration_once(
    store_factory: tuple[str, Path, str],
) -> None:
    errors: list[BaseException] = []
    applied: list[int] = []
    barrier = threading.Barrier(4)

    def open_one() -> None:
        barrier.wait(5)
        try:
            store = open_kind(*store_factory)
        except BaseException as exc:
            errors.append(exc)
            return
        applied.extend(m.version for m in store.applied)
        store.close()

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(applied) == list(range(1, LATEST_VERSION + 1))
    assert _versions(*store_factory) == list(range(1, LATEST_VERSION + 1))


def test_leases_from_before_version_6_are_taken_for_shared_credential_leases(
    store_factory: tuple[str, Path, str],
) -> None:
    """A passthrough lease written by a version 5 broker may be of a shared credential:
    migrated, or written by such a broker after the migration, it needs an ID token of
    its job to be revoked by possession (fail closed); a minted token is never one."""
    blob = "BLOB" if store_factory[0] == "sqlite" else "BYTEA"
    statements = [
        s
        for m in MIGRATIONS
        if m.version <= 5
        for s in m.statements.format(blob=blob).split(";")
        if s.strip()
    ]
    statements.append(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at BIGINT)"
    )
    statements += [f"INSERT INTO schema_version VALUES ({v}, 0)" for v in range(1, 6)]  # noqa: S608
    for token_id, kind in (("lease", "passthrough"), ("minted", "minted")):
        statements.append(
            "INSERT INTO tokens VALUES "  # noqa: S608
            f"('{token_id}', 'sha-{token_id}', '{kind}', 'c', 's', 'sub', '1', '2', '3', '', 0, "
            "4102444800, NULL)"
        )
    _execute(*store_factory, statements)

    migrated = open_kind(*store_factory, migrate=True)
    try:
        assert [m.version for m in migrated.applied] == [6]
        lease, minted = migrated.find_token("lease"), migrated.find_token("minted")
        assert (lease.shared_credential if lease else None) is True
        assert (minted.shared_credential if minted else None) is False
    finally:
        migrated.close()
    # a broker from before version 6, still running, writes a lease without the column
    columns = TOKEN_COLUMNS.removesuffix(", shared_credential")
    _execute(
        *store_factory,
        [
            f"INSERT INTO tokens ({columns}) VALUES ('old', 'sha-old', 'passthrough', "  # noqa: S608
            "'c', 's', 'sub', '1', '2', '3', '', 0, 4102444800, NULL)"
        ],
    )
    reopened = open_kind(*store_factory)
    try:
        written_by_old = reopened.find_token("old")
        assert (written_by_old.shared_credential if written_by_old else None) is True
    finally:
        reopened.close()
