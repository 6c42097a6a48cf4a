"""Connectors' OAuth grants at their providers: the queries behind single-flight refresh.

Part of :class:`~jobtoken.broker.store.base.SqlStore`. A grant row holds the sealed
refresh and access tokens of one connector (``upstream_grants``). A refresh takes the
row's *lease* first: a conditional ``UPDATE`` that only one caller, of every broker
process on the database, can win while the lease runs. The winner calls the provider
with no transaction open, then commits the new tokens, the cleared lease and the audit
record in one transaction (:meth:`GrantQueries.commit_refresh`); the others read the
row again until its generation moves. No transaction is held across a call to the
provider, so a slow provider never holds the store's write lock.

Times of the lease are in milliseconds; a lease no one cleared (a crashed broker)
expires by itself. After a failed refresh no lease is granted before the row's
``retry_at_ms`` (the cool-down), whatever the caller read before.
"""

from __future__ import annotations

from typing import Any

from jobtoken.broker.store.records import (
    GRANT_COLUMNS,
    GRANT_READY,
    AuditBuilder,
    Cursor,
    GrantRow,
)
from jobtoken.broker.store.transactions import Transactions


class GrantQueries(Transactions):
    """The queries on ``upstream_grants`` and ``job_upstream_tokens``."""

    # -- reads -------------------------------------------------------------------------
    def grant(self, connector: str) -> GrantRow | None:
        def body(cur: Cursor) -> GrantRow | None:
            cur.execute(
                self._sql(f"SELECT {GRANT_COLUMNS} FROM upstream_grants WHERE connector = ?"),  # noqa: S608
                (connector,),
            )
            row = cur.fetchone()
            return None if row is None else _grant_row(row)

        return self._read(body)

    def grants(self) -> list[GrantRow]:
        def body(cur: Cursor) -> list[GrantRow]:
            cur.execute(f"SELECT {GRANT_COLUMNS} FROM upstream_grants ORDER BY connector")  # noqa: S608
            return [_grant_row(r) for r in cur.fetchall()]

        return self._read(body)

    # -- writes ------------------------------------------------------------------------
    def put_grant(
        self, connector: str, sealed: bytes, access_expires_at: int, now: int, audit: AuditBuilder
    ) -> int:
        """Store a newly connected grant (ready, no lease) with its audit record; its
        generation, one past the one it replaced."""

        def body(cur: Cursor) -> int:
            cur.execute(
                self._sql(
                    f"INSERT INTO upstream_grants ({GRANT_COLUMNS}) "  # noqa: S608
                    "VALUES (?, ?, 1, ?, ?, ?, '', 0, 0) "
                    "ON CONFLICT (connector) DO UPDATE SET sealed = excluded.sealed, "
                    "generation = upstream_grants.generation + 1, state = excluded.state, "
                    "access_expires_at = excluded.access_expires_at, "
                    "refreshed_at = excluded.refreshed_at, lease_owner = '', "
                    "lease_until_ms = 0, retry_at_ms = 0"
                ),
                (connector, sealed, GRANT_READY, access_expires_at, now),
            )
            cur.execute(
                self._sql("SELECT generation FROM upstream_grants WHERE connector = ?"),
                (connector,),
            )
            generation = int(cur.fetchone()[0])
            self._append(cur, audit)
            return generation

        return self._write(body)

    def ensure_grant(self, connector: str, sealed: bytes, now: int) -> None:
        """Create an empty grant row (generation 0, no token) unless one exists: a
        client-credentials connector's first refresh needs a row to lease."""
        self._write(
            lambda cur: cur.execute(
                self._sql(
                    f"INSERT INTO upstream_grants ({GRANT_COLUMNS}) "  # noqa: S608
                    "VALUES (?, ?, 0, ?, 0, ?, '', 0, 0) ON CONFLICT (connector) DO NOTHING"
                ),
                (connector, sealed, GRANT_READY, now),
            ),
        )

    def take_lease(
        self, connector: str, owner: str, generation: int, now_ms: int, until_ms: int
    ) -> bool:
        """Take the refresh lease of a ready grant still at ``generation``, if no one
        holds it (or its holder's lease ran out) and no failed refresh's cool-down runs
        (``retry_at_ms`` in the future); True if this call took it. One conditional
        ``UPDATE``: a caller that read the row before another's failure cannot retake it."""

        def body(cur: Cursor) -> bool:
            cur.execute(
                self._sql(
                    "UPDATE upstream_grants SET lease_owner = ?, lease_until_ms = ? "
                    "WHERE connector = ? AND generation = ? AND state = ? "
                    "AND (lease_owner = '' OR lease_until_ms < ?) AND retry_at_ms <= ?"
                ),
                (owner, until_ms, connector, generation, GRANT_READY, now_ms, now_ms),
            )
            return cur.rowcount == 1

        return self._write(body)

    def commit_refresh(
        self,
        connector: str,
        owner: str,
        sealed: bytes,
        access_expires_at: int,
        now: int,
        audit: AuditBuilder,
    ) -> int | None:
        """The lease holder's refreshed tokens, the lease cleared and the audit record,
        in one transaction; the new generation, or None if ``owner`` no longer holds
        the lease (nothing is written then)."""

        def body(cur: Cursor) -> int | None:
            cur.execute(
                self._sql(
                    "UPDATE upstream_grants SET sealed = ?, generation = generation + 1, "
                    "access_expires_at = ?, refreshed_at = ?, lease_owner = '', "
                    "lease_until_ms = 0, retry_at_ms = 0 "
                    "WHERE connector = ? AND lease_owner = ?"
                ),
                (sealed, access_expires_at, now, connector, owner),
            )
            if cur.rowcount != 1:
                return None
            cur.execute(
                self._sql("SELECT generation FROM upstream_grants WHERE connector = ?"),
                (connector,),
            )
            generation = int(cur.fetchone()[0])
            self._append(cur, audit)
            return generation

        return self._write(body)

    def release_lease(
        self,
        connector: str,
        owner: str,
        *,
        state: str,
        retry_at_ms: int,
        audit: AuditBuilder | None,
    ) -> bool:
        """Give the lease back after a failed refresh: set the grant's ``state`` and the
        time before which no refresh is tried, with the audit record (if any)."""

        def body(cur: Cursor) -> bool:
            cur.execute(
                self._sql(
                    "UPDATE upstream_grants SET lease_owner = '', lease_until_ms = 0, "
                    "state = ?, retry_at_ms = ? WHERE connector = ? AND lease_owner = ?"
                ),
                (state, retry_at_ms, connector, owner),
            )
            released = cur.rowcount == 1
            if released and audit is not None:
                self._append(cur, audit)
            return released

        return self._write(body)

    # -- per-job upstream tokens (GitHub App installation tokens) ------------------------
    def job_upstream_token(self, token_id: str) -> tuple[bytes, int, int | None] | None:
        """(sealed, expires_at, revoked_upstream_at) of a job's upstream token."""

        def body(cur: Cursor) -> tuple[bytes, int, int | None] | None:
            cur.execute(
                self._sql(
                    "SELECT sealed, expires_at, revoked_upstream_at FROM job_upstream_tokens "
                    "WHERE token_id = ?"
                ),
                (token_id,),
            )
            row = cur.fetchone()
            if row is None:
                return None
            return bytes(row[0]), int(row[1]), None if row[2] is None else int(row[2])

        return self._read(body)

    def mark_upstream_revoked(self, token_id: str, now: int) -> bool:
        """Record that a job's upstream token was revoked at its provider."""

        def body(cur: Cursor) -> bool:
            cur.execute(
                self._sql(
                    "UPDATE job_upstream_tokens SET revoked_upstream_at = ? "
                    "WHERE token_id = ? AND revoked_upstream_at IS NULL"
                ),
                (now, token_id),
            )
            return cur.rowcount == 1

        return self._write(body)

    def unrevoked_upstream_tokens(self, now: int, limit: int) -> list[tuple[str, str, bytes]]:
        """(token_id, connector, sealed) of upstream tokens whose broker token was
        revoked but which are not yet revoked upstream and not yet expired."""

        def body(cur: Cursor) -> list[tuple[str, str, bytes]]:
            cur.execute(
                self._sql(
                    "SELECT u.token_id, u.connector, u.sealed FROM job_upstream_tokens u "
                    "JOIN tokens t ON t.token_id = u.token_id "
                    "WHERE t.revoked_at IS NOT NULL AND u.revoked_upstream_at IS NULL "
                    "AND u.expires_at > ? ORDER BY u.token_id LIMIT ?"
                ),
                (now, limit),
            )
            return [(r[0], r[1], bytes(r[2])) for r in cur.fetchall()]

        return self._read(body)


def _grant_row(row: Any) -> GrantRow:
    return GrantRow(
        connector=row[0],
        sealed=bytes(row[1]),
        generation=int(row[2]),
        state=row[3],
        access_expires_at=int(row[4]),
        refreshed_at=int(row[5]),
        lease_owner=row[6],
        lease_until_ms=int(row[7]),
        retry_at_ms=int(row[8]),
    )
