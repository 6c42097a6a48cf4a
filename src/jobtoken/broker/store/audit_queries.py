"""The audit chain's queries.

Part of :class:`~jobtoken.broker.store.base.SqlStore`. The chain has a single order
in every backend: a record's ``seq`` is the head's plus one, read and written in the
same write transaction, and write transactions are serialised (SQLite's write lock,
PostgreSQL's advisory lock), so concurrent writers, in one process or many, extend
one chain.
"""

from __future__ import annotations

from collections.abc import Iterator

from jobtoken.broker.store.records import (
    AuditBuilder,
    AuditCheckpoint,
    AuditRow,
    Cursor,
)
from jobtoken.broker.store.transactions import Transactions

#: prev_hash of the first audit record
GENESIS_HASH = "0" * 64


_AUDIT_BATCH = 500


class AuditQueries(Transactions):
    """``append_audit``, ``audit_head``, ``audit_rows``, ``audit_page``, the checkpoint
    and the archive; ``_append`` is the one place a record joins the chain."""

    def append_audit(self, build: AuditBuilder) -> int:
        """Append one chained audit record in a write transaction of its own; its ``seq``
        once committed. (A token is issued with its record by ``issue_token``.)"""
        return self._write(lambda cur: self._append(cur, build))

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

        return self._read(body)

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

        return self._read(body)

    # -- archive: a prefix of the chain leaves the store, its head stays as a checkpoint
    def audit_checkpoint(self) -> tuple[int, str] | None:
        """(seq, hash) of the last record archived, where the stored chain starts from."""

        def body(cur: Cursor) -> tuple[int, str] | None:
            cur.execute("SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
            row = cur.fetchone()
            return None if row is None else (int(row[0]), str(row[1]))

        return self._read(body)

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

        return self._write(body)
