"""SQLite backend: the default store, one file in WAL mode, no other service.

- Durability: ``synchronous=FULL``, so a commit is on disk before it returns (an audit
  record must be durable before the token it records is handed out).
- Writes: one connection, used only by the store's writer thread (group commit:
  ``writer.py``). Each write transaction runs in ``BEGIN IMMEDIATE``, SQLite's single
  write lock, so the audit chain is extended by one writer at a time. Several broker
  processes (``--workers N``) may share the file: before ``BEGIN IMMEDIATE`` a writer
  takes an exclusive ``flock`` on ``<file>-writer.lock``, so writers of other processes
  wait in the kernel and wake the moment it is free, instead of in SQLite's busy
  handler, which polls with sleeps of up to 100 ms.
- Reads: each thread reads through a connection of its own (a WAL snapshot), so a
  read never waits for a write in progress.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from jobtoken.broker.store.base import SqlStore
from jobtoken.broker.store.records import Cursor, StoreError

_BUSY_TIMEOUT_MS = 10_000


class SqliteStore(SqlStore):
    placeholder = "?"
    blob = "BLOB"
    database_errors = (sqlite3.Error,)

    def __init__(self, path: Path, *, migrate: bool = False) -> None:
        self._path = path
        self._reader = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(
                f"{path}-writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
            # under the writers' lock: a first switch to WAL by two processes at once
            # would otherwise fail with "database is locked"
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                self._conn = self._connect()
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = FULL")
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the SQLite store {path}: {exc}") from None
        with suppress(OSError):
            path.chmod(0o600)
        self._start(migrate=migrate)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self._path), isolation_level=None, check_same_thread=False, timeout=10
        )
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        return conn

    def _read_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._reader, "conn", None)
        if conn is None:
            try:
                conn = self._connect()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the SQLite store {self._path}: {exc}") from None
            with self._readers_lock:
                self._readers.append(conn)
            self._reader.conn = conn
        return conn

    @contextmanager
    def _write_transaction(self) -> Iterator[Cursor]:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            with _transaction(self._conn, "BEGIN IMMEDIATE") as cur:
                yield cur
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def _read_transaction(self) -> Iterator[Cursor]:
        with _transaction(self._read_connection(), "BEGIN") as cur:
            yield cur

    def _table_exists(self, cur: Cursor, name: str) -> bool:
        cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return cur.fetchone() is not None

    def _close_connections(self) -> None:
        with self._readers_lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        self._conn.close()
        with suppress(OSError):
            os.close(self._lock_fd)


@contextmanager
def _transaction(conn: sqlite3.Connection, begin: str) -> Iterator[Cursor]:
    cur = conn.cursor()
    cur.execute(begin)
    try:
        yield cur
        cur.execute("COMMIT")
    except BaseException:
        with suppress(sqlite3.Error):
            cur.execute("ROLLBACK")  # also after a failed COMMIT (disk full, I/O error)
        raise
    finally:
        cur.close()
