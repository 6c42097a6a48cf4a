"""The broker's store, one schema for SQLite and PostgreSQL.

(SQL text is assembled only from constants of this module; every value is a bound
parameter — hence the ``noqa: S608`` markers.)

:class:`SqlStore` holds the queries (with ``audit_queries.py``, ``job_ends.py``,
``sealed_queries.py`` and ``grant_queries.py``); a backend (``sqlite.py``,
``postgres.py``) supplies a write transaction, a read transaction, a placeholder style
and its driver's error types.

- Every write runs on the store's :class:`~jobtoken.broker.store.writer.BatchWriter`:
  one thread, where concurrent writes share one transaction and one durable commit.
  A write returns only once committed, so a caller that has the return value has a
  durable row.
- Reads run on the caller's thread, each in a read transaction of its own connection
  (a WAL snapshot, or a pooled PostgreSQL connection): a read never waits for a write.
- A store that cannot be reached or cannot commit raises :class:`StoreError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from jobtoken.broker.store.audit_queries import AuditQueries
from jobtoken.broker.store.grant_queries import GrantQueries
from jobtoken.broker.store.issuing import IssueQueries
from jobtoken.broker.store.records import (
    TOKEN_COLUMNS,
    AuditBuilder,
    Cursor,
    JobKey,
    StoreError,
    TokenRecord,
)
from jobtoken.broker.store.schema import Migration, TableExists, ensure_schema
from jobtoken.broker.store.sealed_queries import SealedQueries
from jobtoken.broker.store.writer import BatchWriter, first_line

_TOKEN_COLUMNS = TOKEN_COLUMNS

#: most tokens one revocation transaction revokes (a large job takes several)
REVOKE_BATCH = 500

T = TypeVar("T")

#: the audit record of one revoked token
RevocationRecord = Callable[[TokenRecord], AuditBuilder]

#: a token bound to exactly one job: a token minted without a check_run_id matches only
#: a job without one (revocation by a job's proof; the webhook matches more broadly)
_EXACT_JOB = "repository_id = ? AND run_id = ? AND run_attempt = ? AND check_run_id = ?"


def _job_params(job: JobKey) -> tuple[str, str, str, str]:
    return (job.repository_id, job.run_id, job.run_attempt, job.check_run_id)


class SqlStore(AuditQueries, IssueQueries, SealedQueries, GrantQueries):
    """Every query of the broker. A backend provides the ``_*_transaction`` hooks and
    calls :meth:`_start` once its connections are ready."""

    placeholder = "?"
    blob = "BLOB"
    #: the driver's exception types (a failed statement, a lost connection)
    database_errors: tuple[type[BaseException], ...] = ()

    # -- backend hooks ---------------------------------------------------------------
    def _write_transaction(self) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    def _read_transaction(self) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    def _table_exists(self, cur: Cursor, name: str) -> bool:
        raise NotImplementedError

    def _close_connections(self) -> None:
        raise NotImplementedError

    # -- plumbing --------------------------------------------------------------------
    #: the migrations this open applied (``jobtoken broker migrate`` reports them)
    applied: list[Migration]

    def _start(self, *, migrate: bool) -> None:
        """Check (or create, or with ``migrate`` upgrade) the schema, then start the
        writer."""
        table_exists: TableExists = self._table_exists
        try:
            with self._write_transaction() as cur:
                applied = ensure_schema(
                    cur,
                    table_exists=table_exists,
                    blob=self.blob,
                    placeholder=self.placeholder,
                    migrate=migrate,
                )
        except self.database_errors as exc:
            raise StoreError(f"cannot prepare the store's schema: {exc}") from None
        self.applied = applied
        self._writer = BatchWriter(self._write_transaction, self.database_errors)

    def close(self) -> None:
        writer: BatchWriter | None = getattr(self, "_writer", None)
        if writer is not None:
            writer.close()
        self._close_connections()

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def _read(self, body: Callable[[Cursor], T]) -> T:
        try:
            with self._read_transaction() as cur:
                return body(cur)
        except self.database_errors as exc:
            raise StoreError(f"the store cannot be read: {first_line(exc)}") from None

    def _write(self, body: Callable[[Cursor], T]) -> T:
        return self._writer.run(body)

    # -- OIDC jti replay (the verifier's JtiStore) -----------------------------------
    def jti_claimed(self, issuer: str, jti: str, now: int) -> bool:
        """Whether (issuer, jti) is claimed and not expired (a read: the claim itself is
        made by :meth:`claim_jti` or the issuing transaction)."""

        def body(cur: Cursor) -> bool:
            cur.execute(
                self._sql(
                    "SELECT 1 FROM jti_replay WHERE issuer = ? AND jti = ? AND expires_at >= ?"
                ),
                (issuer, jti, now),
            )
            return cur.fetchone() is not None

        return self._read(body)

    def claim_jti(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Record (issuer, jti) as used; False if it was already used and not yet expired."""
        now = int(time.time())

        def body(cur: Cursor) -> bool:
            cur.execute(self._sql("DELETE FROM jti_replay WHERE expires_at < ?"), (now,))
            cur.execute(
                self._sql(
                    "INSERT INTO jti_replay (issuer, jti, expires_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (issuer, jti) DO NOTHING"
                ),
                (issuer, jti, int(expires_at) + 1),
            )
            return cur.rowcount == 1

        return self._write(body)

    # -- tokens ----------------------------------------------------------------------
    def find_tokens(self, token_sha256: str) -> list[TokenRecord]:
        def body(cur: Cursor) -> list[TokenRecord]:
            cur.execute(
                self._sql(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE token_sha256 = ?"),  # noqa: S608
                (token_sha256,),
            )
            return [TokenRecord.from_row(row) for row in cur.fetchall()]

        return self._read(body)

    def find_token(self, token_id: str) -> TokenRecord | None:
        def body(cur: Cursor) -> TokenRecord | None:
            cur.execute(
                self._sql(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE token_id = ?"),  # noqa: S608
                (token_id,),
            )
            row = cur.fetchone()
            return None if row is None else TokenRecord.from_row(row)

        return self._read(body)

    # -- revocation, each token with its audit record in one transaction ------------
    def revoke_by_sha256(
        self, token_sha256: str, now: int, record: RevocationRecord, job: JobKey | None = None
    ) -> list[TokenRecord]:
        """Revoke the tokens with this hash that possession can name; the ones this call
        revoked. Without ``job``, that is every token but the leases of a shared
        credential (whose hash every job's lease has); with it, the tokens bound to
        exactly that job (a token minted without a check_run_id only for a job without one).
        """
        if job is None:
            where = "token_sha256 = ? AND (kind <> 'passthrough' OR shared_credential = 0)"
            return self._revoke(where, (token_sha256,), now, record, REVOKE_BATCH)
        where, params = f"token_sha256 = ? AND {_EXACT_JOB}", (token_sha256, *_job_params(job))
        return self._revoke(where, params, now, record, REVOKE_BATCH)

    def revoke_by_id(
        self, token_id: str, now: int, record: RevocationRecord, job: JobKey
    ) -> TokenRecord | None:
        """Revoke one token by its id if it is bound to exactly ``job``; it, if this call
        revoked it."""
        where, params = f"token_id = ? AND {_EXACT_JOB}", (token_id, *_job_params(job))
        revoked = self._revoke(where, params, now, record, 1)
        return revoked[0] if revoked else None

    def revoke_job(
        self,
        repository_id: str,
        run_id: str,
        run_attempt: str,
        check_run_id: str,
        now: int,
        record: RevocationRecord,
        limit: int = REVOKE_BATCH,
    ) -> list[TokenRecord]:
        """Revoke at most ``limit`` unrevoked tokens of one job (call again until it
        returns fewer); tokens without a check_run_id match the whole run attempt (the
        broker cannot tell which job of it they belong to)."""
        where = (
            "repository_id = ? AND run_id = ? AND run_attempt = ? "
            "AND (check_run_id = ? OR check_run_id = '')"
        )
        params = (repository_id, run_id, run_attempt, check_run_id)
        return self._revoke(where, params, now, record, limit)

    def _revoke(
        self,
        where: str,
        params: tuple[str, ...],
        now: int,
        record: RevocationRecord,
        limit: int,
    ) -> list[TokenRecord]:
        """One transaction: mark up to ``limit`` unrevoked tokens matching ``where`` (a
        constant of this module) revoked, and append each one's audit record."""

        def body(cur: Cursor) -> list[TokenRecord]:
            cur.execute(
                self._sql(
                    f"SELECT {_TOKEN_COLUMNS} FROM tokens "  # noqa: S608
                    f"WHERE {where} AND revoked_at IS NULL ORDER BY token_id LIMIT {int(limit)}"
                ),
                params,
            )
            rows = [TokenRecord.from_row(row) for row in cur.fetchall()]
            for row in rows:
                cur.execute(
                    self._sql("UPDATE tokens SET revoked_at = ? WHERE token_id = ?"),
                    (now, row.token_id),
                )
                self._append(cur, record(row))
            return rows

        return self._write(body)

    def purge_expired_tokens(self, before: int, limit: int) -> int:
        """Delete at most ``limit`` tokens that expired before ``before``; returns how many."""

        def body(cur: Cursor) -> int:
            cur.execute(
                self._sql(
                    "DELETE FROM tokens WHERE token_id IN "
                    "(SELECT token_id FROM tokens WHERE expires_at < ? LIMIT ?)"
                ),
                (before, limit),
            )
            deleted = cur.rowcount
            cur.execute(  # a job's upstream token lives no longer than its broker token
                self._sql(
                    "DELETE FROM job_upstream_tokens WHERE token_id IN "
                    "(SELECT token_id FROM job_upstream_tokens WHERE expires_at < ? LIMIT ?)"
                ),
                (before, limit),
            )
            return deleted

        return self._write(body)

    def purge_expired_jti(self, before: int, limit: int) -> int:
        """Delete at most ``limit`` jti rows that expired before ``before``; returns how many."""

        def body(cur: Cursor) -> int:
            cur.execute(
                self._sql(
                    "DELETE FROM jti_replay WHERE (issuer, jti) IN "
                    "(SELECT issuer, jti FROM jti_replay WHERE expires_at < ? LIMIT ?)"
                ),
                (before, limit),
            )
            return cur.rowcount

        return self._write(body)
