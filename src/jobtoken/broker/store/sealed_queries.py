"""Sealed secrets at rest: connector credentials, signing keys, OAuth grants, per-job
upstream tokens and the broker's seal key (the blobs are
``sealing.Envelope`` envelopes; the store never sees a plaintext).

Part of :class:`~jobtoken.broker.store.base.SqlStore`.
"""

from __future__ import annotations

from jobtoken.broker.store.records import (
    SEALED_TABLES,
    Cursor,
    SealedRecord,
    SealKeyRow,
    SigningKeyRow,
)
from jobtoken.broker.store.transactions import Transactions


class SealedQueries(Transactions):
    """The queries on ``connector_credentials``, ``signing_keys`` and ``seal_keys``, and on
    every table of ``SEALED_TABLES`` for re-wrapping."""

    # -- sealed secrets --------------------------------------------------------------
    def put_credential(self, name: str, sealed: bytes, now: int) -> None:
        self._write(
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

        return self._read(body)

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

        self._write(body)

    def signing_keys(self) -> list[SigningKeyRow]:
        """The current and previous signing keys, current first."""

        def body(cur: Cursor) -> list[SigningKeyRow]:
            cur.execute(
                "SELECT kid, alg, state, created_at, sealed FROM signing_keys "
                "WHERE state IN ('current', 'previous') ORDER BY state"
            )
            return [SigningKeyRow(r[0], r[1], r[2], int(r[3]), bytes(r[4])) for r in cur.fetchall()]

        return self._read(body)

    def add_seal_key(self, row: SealKeyRow) -> bool:
        """Make ``row`` the current seal key unless there is one already (two processes
        creating it at once: one wins, the unique index on the current state decides);
        True when ``row`` was stored."""

        def body(cur: Cursor) -> bool:
            cur.execute(
                self._sql(
                    "INSERT INTO seal_keys (key_id, state, created_at, sealed) "
                    "VALUES (?, 'current', ?, ?) ON CONFLICT DO NOTHING"
                ),
                (row.key_id, row.created_at, row.sealed),
            )
            return cur.rowcount == 1

        return self._write(body)

    def seal_keys(self) -> list[SealKeyRow]:
        """Every seal key, the current one first."""

        def body(cur: Cursor) -> list[SealKeyRow]:
            cur.execute(
                "SELECT key_id, state, created_at, sealed FROM seal_keys "
                "ORDER BY CASE WHEN state = 'current' THEN 0 ELSE 1 END, created_at DESC"
            )
            return [SealKeyRow(r[0], r[1], int(r[2]), bytes(r[3])) for r in cur.fetchall()]

        return self._read(body)

    def sealed_records(self) -> list[SealedRecord]:
        def body(cur: Cursor) -> list[SealedRecord]:
            out: list[SealedRecord] = []
            for table, (column, _) in SEALED_TABLES.items():
                cur.execute(f"SELECT {column}, sealed FROM {table} ORDER BY {column}")  # noqa: S608
                out += [SealedRecord(table, r[0], bytes(r[1])) for r in cur.fetchall()]
            return out

        return self._read(body)

    def replace_sealed(self, record: SealedRecord, new_sealed: bytes) -> bool:
        """Compare-and-swap one sealed blob; False if it changed meanwhile."""
        column = SEALED_TABLES[record.table][0]

        def body(cur: Cursor) -> bool:
            cur.execute(
                self._sql(
                    f"UPDATE {record.table} SET sealed = ? WHERE {column} = ? AND sealed = ?"  # noqa: S608
                ),
                (new_sealed, record.key, record.sealed),
            )
            return cur.rowcount == 1

        return self._write(body)
