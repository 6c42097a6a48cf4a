"""PostgreSQL backend (psycopg 3), for brokers that run several hosts.

Same schema and queries as SQLite. Every write transaction first takes one
transaction-scoped advisory lock, so the audit chain is extended by one writer at a
time across all broker processes; reads take no lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from jobtoken.broker.store.base import Cursor, SqlStore, StoreError
from jobtoken.broker.store.schema import SCHEMA

#: advisory lock key shared by every broker process writing to this database
_WRITE_LOCK_KEY = 0x6A6F62746F6B656E  # "jobtoken"
_CONNECT_TIMEOUT_S = 10


class PostgresStore(SqlStore):
    placeholder = "%s"

    def __init__(self, dsn: str) -> None:
        super().__init__()
        import psycopg

        self._psycopg = psycopg
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)
            with self._transaction(write=True) as cur:
                for statement in SCHEMA.format(blob="BYTEA").split(";"):
                    if statement.strip():
                        cur.execute(statement)
        except psycopg.Error as exc:
            # psycopg's messages name host/port/user but never the password.
            raise StoreError(f"cannot open the PostgreSQL store: {exc}") from None

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Cursor]:
        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                if write:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK_KEY,))
                yield cur
        except self._psycopg.OperationalError as exc:
            raise StoreError(f"PostgreSQL store unavailable: {exc}") from None

    def close(self) -> None:
        self._conn.close()
