"""The audit chain's queries, and the issuing transaction that appends to it.

Part of :class:`~jobtoken.broker.store.base.SqlStore`. The chain has a single order
in every backend: a record's ``seq`` is the head's plus one, read and written in the
same write transaction, and write transactions are serialised (SQLite's write lock,
PostgreSQL's advisory lock), so concurrent writers, in one process or many, extend
one chain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from jobtoken.broker.store.job_ends import JobEndQueries
from jobtoken.broker.store.records import (
    TOKEN_COLUMNS,
    AuditCheckpoint,
    AuditRow,
    Cursor,
    IssueRefused,
    JobKey,
    JtiClaim,
    TokenRecord,
)

#: prev_hash of the first audit record
GENESIS_HASH = "0" * 64

#: given (seq, prev_hash) of the record to write, returns (record text, its hash)
AuditBuilder = Callable[[int, str], tuple[str, str]]

_AUDIT_BATCH = 500


class AuditQueries(JobEndQueries):
    """``append_audit`` (the issuing transaction), ``audit_head``, ``audit_rows`` and
    ``audit_page``; the issuing transaction asks the job-end table, hence the base class."""

    def append_audit(
        self,
        build: AuditBuilder,
        token: TokenRecord | None = None,
        *,
        jti: JtiClaim | None = None,
        job: JobKey | None = None,
        upstream: bytes | None = None,
    ) -> int:
        """Append one chained audit record in one transaction; its ``seq`` once committed.

        The issuing transaction passes the rest of what it commits with the record:

        1. ``jti``: claim the ID token's single use (``IssueRefused("replayed")`` if it
           was claimed already);
        2. ``job``: the job has not ended (``IssueRefused("job_completed")``), checked
           under the write lock, so a job end recorded meanwhile is seen;
        3. the audit record and ``token``'s row;
        4. ``upstream``: the sealed upstream token the job got with ``token`` (a GitHub
           App installation token), kept for the proxy and for revoking it upstream.

        A refusal commits nothing of the transaction.
        """

        def body(cur: Cursor) -> int:
            if jti is not None:
                cur.execute(
                    self._sql(
                        "INSERT INTO jti_replay (issuer, jti, expires_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (issuer, jti) DO NOTHING"
                    ),
                    (jti.issuer, jti.jti, jti.expires_at),
                )
                if cur.rowcount != 1:
                    raise IssueRefused("replayed")
            if job is not None and self._job_ended_in(cur, job):
                raise IssueRefused("job_completed")
            seq = self._append(cur, build)
            if token is not None:
                cur.execute(
                    self._sql(
                        f"INSERT INTO tokens ({TOKEN_COLUMNS}) "  # noqa: S608
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
                        int(token.shared_credential),
                    ),
                )
                if upstream is not None:
                    cur.execute(
                        self._sql(
                            "INSERT INTO job_upstream_tokens "
                            "(token_id, connector, sealed, expires_at) VALUES (?, ?, ?, ?)"
                        ),
                        (token.token_id, token.connector, upstream, token.expires_at),
                    )
            return seq

        result: int = self._run(True, body)
        return result

    def _append(self, cur: Cursor, build: AuditBuilder) -> int:
        """Append one record after the head, inside the caller's write transaction."""
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
        return seq

    def audit_head(self) -> tuple[int, str] | None:
        def body(cur: Cursor) -> tuple[int, str] | None:
            cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1")
            row = cur.fetchone()
            return None if row is None else (int(row[0]), str(row[1]))

        result: tuple[int, str] | None = self._run(False, body)
        return result

    def audit_rows(self, up_to: int | None = None) -> Iterator[AuditRow]:
        """Every audit row in ``seq`` order (up to ``up_to``, when given), in batches.

        Records are only ever appended, so the rows up to a head read earlier are the
        same in every later read: a verifier reads the head first, then the rows up to
        it, and is not misled by records appended meanwhile.
        """
        after = 0
        while True:
            batch = self.audit_page(after, _AUDIT_BATCH, up_to=up_to)
            yield from batch
            if len(batch) < _AUDIT_BATCH:
                return
            after = batch[-1].seq

    def audit_page(self, after: int, limit: int, *, up_to: int | None = None) -> list[AuditRow]:
        """At most ``limit`` (1 to 10,000) rows with ``seq > after`` (and ``<= up_to``),
        in ``seq`` order: one bounded read, for a reader that pages or follows."""
        if not 1 <= limit <= 10_000:
            raise ValueError("an audit page holds 1 to 10000 rows")
        last = 2**63 - 1 if up_to is None else up_to

        def body(cur: Cursor) -> list[AuditRow]:
            cur.execute(
                self._sql(
                    "SELECT seq, record, prev_hash, hash FROM audit "  # noqa: S608
                    f"WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT {int(limit)}"
                ),
                (after, last),
            )
            return [AuditRow(int(r[0]), r[1], r[2], r[3]) for r in cur.fetchall()]

        result: list[AuditRow] = self._run(False, body)
        return result

    # -- archive: a prefix of the chain leaves the store, its head stays as a checkpoint
    def audit_checkpoint(self) -> tuple[int, str] | None:
        """(seq, hash) of the last record archived, where the stored chain starts from."""

        def body(cur: Cursor) -> tuple[int, str] | None:
            cur.execute("SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
            row = cur.fetchone()
            return None if row is None else (int(row[0]), str(row[1]))

        result: tuple[int, str] | None = self._run(False, body)
        return result

    def archive_audit(self, checkpoint: AuditCheckpoint) -> int:
        """Record ``checkpoint`` and delete the records up to it, in one transaction;
        the records deleted. Refused (``ValueError``) unless the stored record at
        ``checkpoint.seq`` has ``checkpoint.hash``: only what was exported leaves."""

        def body(cur: Cursor) -> int:
            cur.execute(self._sql("SELECT hash FROM audit WHERE seq = ?"), (checkpoint.seq,))
            row = cur.fetchone()
            if row is None or row[0] != checkpoint.hash:
                raise ValueError(f"record {checkpoint.seq} is not the one that was exported")
            cur.execute(
                self._sql(
                    "INSERT INTO audit_checkpoints (seq, hash, archived_before, archived_at, "
                    "records, file_sha256) VALUES (?, ?, ?, ?, ?, ?)"
                ),
                (
                    checkpoint.seq,
                    checkpoint.hash,
                    checkpoint.archived_before,
                    checkpoint.archived_at,
                    checkpoint.records,
                    checkpoint.file_sha256,
                ),
            )
            cur.execute(self._sql("DELETE FROM audit WHERE seq <= ?"), (checkpoint.seq,))
            return cur.rowcount

        result: int = self._run(True, body)
        return result
