"""SQLite backend: the default store, one file in WAL mode, no other service.

Several broker processes (``--workers N``) may share the file: every write runs in
``BEGIN IMMEDIATE``, which takes SQLite's single write lock, so the audit chain is
extended by one writer at a time; readers are not blocked (WAL). ``synchronous=FULL``
makes a commit durable before it returns (an audit record must be on disk before the
token it records is handed out).

Writes go through one connection behind the store's lock; each thread reads through a
connection of its own (WAL snapshots), so a read never waits for a write in progress.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from jobtoken.broker.store.base import Cursor, SqlStore, StoreError
from jobtoken.broker.store.schema import SCHEMA

_BUSY_TIMEOUT_MS = 10_000


class SqliteStore(SqlStore):
    placeholder = "?"

    concurrent_reads = True

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = path
        self._reader = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=10
            )
            self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            with self._transaction(write=True) as cur:
                for statement in SCHEMA.format(blob="BLOB").split(";"):
                    if statement.strip():
                        cur.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the SQLite store {path}: {exc}") from None
        with suppress(OSError):
            path.chmod(0o600)

    def _read_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._reader, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    str(self._path), isolation_level=None, check_same_thread=False, timeout=10
                )
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the SQLite store {self._path}: {exc}") from None
            with self._readers_lock:
                self._readers.append(conn)
            self._reader.conn = conn
        return conn

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Cursor]:
        cur = (self._conn if write else self._read_connection()).cursor()
        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    def close(self) -> None:
        with self._readers_lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        self._conn.close()
