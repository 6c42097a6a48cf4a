"""PostgreSQL backend (psycopg 3 with ``psycopg_pool``), for brokers that scale out:
several ``broker serve`` processes, on one host or many, on one database.

- Connections come from a pool that checks each one as it is checked out
  (``ConnectionPool.check_connection``) and replaces one that broke, so the store
  recovers by itself when PostgreSQL restarts. While no connection can be had within
  ``CHECKOUT_TIMEOUT_S``, a query raises :class:`StoreError` (the broker answers 503);
  after that, requests probe the database with one direct connection (a fast 503
  while it is down) and, once it answers, a new pool replaces the old one.
- Every write transaction first takes one transaction-scoped advisory lock, so the
  audit chain is extended by one writer at a time across all broker processes (a
  single order: the head is read and moved under that lock). Each process has one
  writer thread that batches concurrent writes into one commit (``writer.py``).
- Reads run on pooled connections and take no lock: they never wait for a writer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool

from jobtoken.broker.store.base import SqlStore
from jobtoken.broker.store.records import Cursor, StoreError

#: advisory lock key shared by every broker process writing to this database
_WRITE_LOCK_KEY = 0x6A6F62746F6B656E  # "jobtoken"
_CONNECT_TIMEOUT_S = 10
#: how long a query waits for a pooled connection before the store counts as down
CHECKOUT_TIMEOUT_S = 5.0
#: how long the direct connection that probes a database seen down may take
_PROBE_TIMEOUT_S = 2
POOL_SIZE = 16


class PostgresStore(SqlStore):
    placeholder = "%s"
    blob = "BYTEA"
    database_errors = (psycopg.Error,)

    def __init__(self, dsn: str, *, migrate: bool = False, pool_size: int = POOL_SIZE) -> None:
        self._dsn, self._pool_size = dsn, pool_size
        self._pool_lock = threading.Lock()
        self._down = False
        try:
            self._pool = self._open_pool()
        except psycopg.Error as exc:
            # psycopg's messages name host/port/user but never the password.
            raise StoreError(f"cannot open the PostgreSQL store: {exc}") from None
        self._start(migrate=migrate)

    def _open_pool(self) -> psycopg_pool.ConnectionPool:
        pool = psycopg_pool.ConnectionPool(
            self._dsn,
            min_size=1,
            max_size=self._pool_size,
            kwargs={"autocommit": True, "connect_timeout": _CONNECT_TIMEOUT_S},
            check=psycopg_pool.ConnectionPool.check_connection,
            timeout=CHECKOUT_TIMEOUT_S,
            name="jobtoken-store",
            open=False,
        )
        try:
            pool.open(wait=True, timeout=_CONNECT_TIMEOUT_S)
        except psycopg.Error:
            pool.close()
            raise
        return pool

    @contextmanager
    def _write_transaction(self) -> Iterator[Cursor]:
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK_KEY,))
            yield cur

    @contextmanager
    def _read_transaction(self) -> Iterator[Cursor]:
        with self._transaction() as cur:
            yield cur

    @contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        pool, conn = self._checkout()
        try:
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        finally:
            pool.putconn(conn)  # the pool discards a connection left broken

    def _checkout(self) -> tuple[psycopg_pool.ConnectionPool, psycopg.Connection[Any]]:
        """A checked connection from the pool.

        Once a checkout has timed out (the database is down), every later one first
        tries one direct connection: refused at once while the database is down (a fast
        503, not a wait of ``CHECKOUT_TIMEOUT_S``), and once it succeeds a new pool
        replaces the old one, which may still be waiting out its reconnection back-off,
        so that the first request after the outage succeeds.
        """
        if self._down:
            self._probe_and_renew()
        pool = self._pool
        try:
            return pool, pool.getconn()
        except psycopg_pool.PoolTimeout:
            self._down = True
            raise StoreError(
                f"PostgreSQL store unavailable: no connection within {CHECKOUT_TIMEOUT_S:g} s"
            ) from None

    def _probe_and_renew(self) -> None:
        with self._pool_lock:
            if not self._down:
                return
            try:
                psycopg.connect(self._dsn, connect_timeout=_PROBE_TIMEOUT_S).close()
                renewed = self._open_pool()
            except psycopg.Error as exc:
                reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                raise StoreError(f"PostgreSQL store unavailable: {reason}") from None
            old, self._pool, self._down = self._pool, renewed, False
        threading.Thread(target=old.close, name="jobtoken-old-pool", daemon=True).start()

    def _table_exists(self, cur: Cursor, name: str) -> bool:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
        row = cur.fetchone()
        return bool(row and row[0])

    def _close_connections(self) -> None:
        self._pool.close()
