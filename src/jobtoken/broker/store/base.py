"""The broker's store, one schema for SQLite and PostgreSQL.

(SQL text is assembled only from constants of this module; every value is a bound
parameter — hence the ``noqa: S608`` markers.)

:class:`SqlStore` holds every query; a backend (``sqlite.py``, ``postgres.py``) only
supplies a connection, a placeholder style and how to open a write transaction. Every
method is thread-safe (writes: one connection behind a lock) and every write commits before it
returns, so a caller that has the return value has a durable row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from jobtoken.broker.store.job_ends import JobEndQueries
from jobtoken.broker.store.records import AuditRow, SealedRecord, SigningKeyRow, TokenRecord

#: prev_hash of the first audit record
GENESIS_HASH = "0" * 64

_TOKEN_COLUMNS = (
    "token_id, token_sha256, kind, connector, scopes, subject, repository_id, run_id, "  # noqa: S105
    "run_attempt, check_run_id, issued_at, expires_at, revoked_at"
)
_AUDIT_BATCH = 500

#: given (seq, prev_hash) of the record to write, returns (record text, its hash)
AuditBuilder = Callable[[int, str], tuple[str, str]]


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: Any, params: Sequence[Any] = ...) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ...) -> list[Any]: ...


class StoreError(Exception):
    """The store is unreachable or its contents are not what the broker wrote."""


class SqlStore(JobEndQueries):
    """Every query of the broker. Subclasses provide :meth:`_transaction`."""

    placeholder = "?"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    # -- backend hooks ---------------------------------------------------------------
    def _transaction(self, *, write: bool) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    #: a backend whose read transactions use their own connections sets this: reads
    #: then never wait for the process's writer
    concurrent_reads = False

    def _run(self, write: bool, body: Callable[[Cursor], Any]) -> Any:
        if not write and self.concurrent_reads:
            with self._transaction(write=False) as cur:
                return body(cur)
        with self._lock, self._transaction(write=write) as cur:
            return body(cur)

    # -- OIDC jti replay (the verifier's JtiStore) -----------------------------------
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

        result: bool = self._run(True, body)
        return result

    # -- tokens ----------------------------------------------------------------------
    def find_tokens(self, token_sha256: str) -> list[TokenRecord]:
        def body(cur: Cursor) -> list[TokenRecord]:
            cur.execute(
                self._sql(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE token_sha256 = ?"),  # noqa: S608
                (token_sha256,),
            )
            return [TokenRecord(*row) for row in cur.fetchall()]

        result: list[TokenRecord] = self._run(False, body)
        return result

    def find_token(self, token_id: str) -> TokenRecord | None:
        def body(cur: Cursor) -> TokenRecord | None:
            cur.execute(
                self._sql(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE token_id = ?"),  # noqa: S608
                (token_id,),
            )
            row = cur.fetchone()
            return None if row is None else TokenRecord(*row)

        result: TokenRecord | None = self._run(False, body)
        return result

    def revoke_by_sha256(self, token_sha256: str, now: int) -> list[TokenRecord]:
        """Revoke every token with this hash; returns the ones this call revoked."""

        def body(cur: Cursor) -> list[TokenRecord]:
            cur.execute(
                self._sql(
                    f"SELECT {_TOKEN_COLUMNS} FROM tokens "  # noqa: S608
                    "WHERE token_sha256 = ? AND revoked_at IS NULL"
                ),
                (token_sha256,),
            )
            rows = [TokenRecord(*row) for row in cur.fetchall()]
            cur.execute(
                self._sql(
                    "UPDATE tokens SET revoked_at = ? WHERE token_sha256 = ? AND revoked_at IS NULL"
                ),
                (now, token_sha256),
            )
            return rows

        result: list[TokenRecord] = self._run(True, body)
        return result

    def revoke_by_id(self, token_id: str, now: int) -> TokenRecord | None:
        """Revoke one token by its id; returns it if this call revoked it."""

        def body(cur: Cursor) -> TokenRecord | None:
            cur.execute(
                self._sql(
                    f"SELECT {_TOKEN_COLUMNS} FROM tokens "  # noqa: S608
                    "WHERE token_id = ? AND revoked_at IS NULL"
                ),
                (token_id,),
            )
            row = cur.fetchone()
            cur.execute(
                self._sql(
                    "UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL"
                ),
                (now, token_id),
            )
            return None if row is None else TokenRecord(*row)

        result: TokenRecord | None = self._run(True, body)
        return result

    def revoke_job(
        self, repository_id: str, run_id: str, run_attempt: str, check_run_id: str, now: int
    ) -> list[TokenRecord]:
        """Revoke the tokens of one job; tokens without a check_run_id match the whole run
        attempt (the broker cannot tell which job of it they belong to)."""
        where = (
            "repository_id = ? AND run_id = ? AND run_attempt = ? "
            "AND (check_run_id = ? OR check_run_id = '') AND revoked_at IS NULL"
        )
        params = (repository_id, run_id, run_attempt, check_run_id)

        def body(cur: Cursor) -> list[TokenRecord]:
            cur.execute(self._sql(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE {where}"), params)  # noqa: S608
            rows = [TokenRecord(*row) for row in cur.fetchall()]
            cur.execute(
                self._sql(f"UPDATE tokens SET revoked_at = ? WHERE {where}"),  # noqa: S608
                (now, *params),
            )
            return rows

        result: list[TokenRecord] = self._run(True, body)
        return result

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
            return cur.rowcount

        result: int = self._run(True, body)
        return result

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

        result: int = self._run(True, body)
        return result

    # -- audit (and the token it issues, in the same transaction) ---------------------
    def append_audit(self, build: AuditBuilder, token: TokenRecord | None = None) -> int:
        """Append one chained audit record (and insert ``token``) in one transaction.

        Returns the record's sequence number once the transaction is committed.
        """

        def body(cur: Cursor) -> int:
            cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1")
            head = cur.fetchone()
            seq, prev_hash = (1, GENESIS_HASH) if head is None else (int(head[0]) + 1, head[1])
            record, digest = build(seq, prev_hash)
            cur.execute(
                self._sql("INSERT INTO audit (seq, record, prev_hash, hash) VALUES (?, ?, ?, ?)"),
                (seq, record, prev_hash, digest),
            )
            cur.execute(
                self._sql(
                    "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"
                ),
                (seq, digest),
            )
            if token is not None:
                cur.execute(
                    self._sql(
                        f"INSERT INTO tokens ({_TOKEN_COLUMNS}) "  # noqa: S608
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    (
                        token.token_id,
                        token.token_sha256,
                        token.kind,
                        token.connector,
                        token.scopes,
                        token.subject,
                        token.repository_id,
                        token.run_id,
                        token.run_attempt,
                        token.check_run_id,
                        token.issued_at,
                        token.expires_at,
                        token.revoked_at,
                    ),
                )
            return seq

        result: int = self._run(True, body)
        return result

    def audit_head(self) -> tuple[int, str] | None:
        def body(cur: Cursor) -> tuple[int, str] | None:
            cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1")
            row = cur.fetchone()
            return None if row is None else (int(row[0]), str(row[1]))

        result: tuple[int, str] | None = self._run(False, body)
        return result

    def audit_rows(self) -> Iterator[AuditRow]:
        """Every audit row in ``seq`` order, read in batches."""
        after = 0
        while True:

            def body(cur: Cursor, after: int = after) -> list[AuditRow]:
                cur.execute(
                    self._sql(
                        "SELECT seq, record, prev_hash, hash FROM audit WHERE seq > ? "  # noqa: S608
                        f"ORDER BY seq LIMIT {_AUDIT_BATCH}"
                    ),
                    (after,),
                )
                return [AuditRow(int(r[0]), r[1], r[2], r[3]) for r in cur.fetchall()]

            batch: list[AuditRow] = self._run(False, body)
            yield from batch
            if len(batch) < _AUDIT_BATCH:
                return
            after = batch[-1].seq

    # -- sealed secrets --------------------------------------------------------------
    def put_credential(self, name: str, sealed: bytes, now: int) -> None:
        self._run(
            True,
            lambda cur: cur.execute(
                self._sql(
                    "INSERT INTO connector_credentials (name, sealed, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, "
                    "updated_at = excluded.updated_at"
                ),
                (name, sealed, now),
            ),
        )

    def get_credential(self, name: str) -> bytes | None:
        def body(cur: Cursor) -> bytes | None:
            cur.execute(
                self._sql("SELECT sealed FROM connector_credentials WHERE name = ?"), (name,)
            )
            row = cur.fetchone()
            return None if row is None else bytes(row[0])

        result: bytes | None = self._run(False, body)
        return result

    def add_signing_key(self, row: SigningKeyRow) -> None:
        """Make ``row`` the current key: current becomes previous, previous is retired."""

        def body(cur: Cursor) -> None:
            cur.execute("UPDATE signing_keys SET state = 'retired' WHERE state = 'previous'")
            cur.execute("UPDATE signing_keys SET state = 'previous' WHERE state = 'current'")
            cur.execute(
                self._sql(
                    "INSERT INTO signing_keys (kid, alg, state, created_at, sealed) "
                    "VALUES (?, ?, 'current', ?, ?)"
                ),
                (row.kid, row.alg, row.created_at, row.sealed),
            )

        self._run(True, body)

    def signing_keys(self) -> list[SigningKeyRow]:
        """The current and previous signing keys, current first."""

        def body(cur: Cursor) -> list[SigningKeyRow]:
            cur.execute(
                "SELECT kid, alg, state, created_at, sealed FROM signing_keys "
                "WHERE state IN ('current', 'previous') ORDER BY state"
            )
            return [SigningKeyRow(r[0], r[1], r[2], int(r[3]), bytes(r[4])) for r in cur.fetchall()]

        result: list[SigningKeyRow] = self._run(False, body)
        return result

    def sealed_records(self) -> list[SealedRecord]:
        def body(cur: Cursor) -> list[SealedRecord]:
            cur.execute("SELECT name, sealed FROM connector_credentials ORDER BY name")
            out = [SealedRecord("connector_credentials", r[0], bytes(r[1])) for r in cur.fetchall()]
            cur.execute("SELECT kid, sealed FROM signing_keys ORDER BY kid")
            out += [SealedRecord("signing_keys", r[0], bytes(r[1])) for r in cur.fetchall()]
            return out

        result: list[SealedRecord] = self._run(False, body)
        return result

    def replace_sealed(self, record: SealedRecord, new_sealed: bytes) -> bool:
        """Compare-and-swap one sealed blob; False if it changed meanwhile."""
        column = {"connector_credentials": "name", "signing_keys": "kid"}[record.table]

        def body(cur: Cursor) -> bool:
            cur.execute(
                self._sql(
                    f"UPDATE {record.table} SET sealed = ? WHERE {column} = ? AND sealed = ?"  # noqa: S608
                ),
                (new_sealed, record.key, record.sealed),
            )
            return cur.rowcount == 1

        result: bool = self._run(True, body)
        return result
