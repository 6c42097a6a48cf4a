"""The expiry purge: a background task that keeps the store from growing without bound.

:meth:`ExpiryPurge.run_round` runs, in order:

1. delete ``jti`` rows whose ``expires_at`` has passed (an ID token past its ``exp``
   is refused before its ``jti`` is looked up, so such a row protects nothing);
2. delete tokens that expired more than ``retention`` seconds ago (revoke answers 200
   and introspect ``{"active": false}`` for an unknown token, as for an expired one);
3. each delete is one short transaction of at most :data:`BATCH` rows (indexed on
   ``expires_at``), so an exchange never waits behind a long delete; a round stops
   after :data:`MAX_BATCHES` batches per table and the next round goes on;
4. a store error ends the round with one log line, no traceback; the next round retries;
5. then ``after_round`` (the broker's: revocations of jobs' GitHub App tokens that
   GitHub did not confirm are retried, ``job_upstream_tokens.JobUpstreamTokens.sweep``).

:meth:`ExpiryPurge.run_forever` runs one round every ``interval`` seconds in a worker
thread (the store blocks), until it is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from jobtoken.broker.store import SqlStore, StoreError

__all__ = ["BATCH", "MAX_BATCHES", "ExpiryPurge"]

BATCH = 1000
MAX_BATCHES = 100
_log = logging.getLogger("jobtoken.broker")


class ExpiryPurge:
    def __init__(
        self,
        store: SqlStore,
        *,
        retention: int,
        interval: float = 60.0,
        clock: Callable[[], float] = time.time,
        after_round: Callable[[], object] = lambda: None,
    ) -> None:
        self._after_round = after_round
        self._store, self._retention, self._interval, self._clock = (
            store,
            retention,
            interval,
            clock,
        )

    def run_round(self) -> tuple[int, int]:
        """One round; returns (jti rows, tokens) deleted."""
        now = int(self._clock())
        try:
            jti_rows = self._batches(self._store.purge_expired_jti, now)
            tokens = self._batches(self._store.purge_expired_tokens, now - self._retention)
            self._after_round()
        except StoreError as exc:
            _log.warning("expiry purge skipped this round: %s", exc)
            return 0, 0
        return jti_rows, tokens

    @staticmethod
    def _batches(delete: Callable[[int, int], int], before: int) -> int:
        total = 0
        for _ in range(MAX_BATCHES):
            deleted = delete(before, BATCH)
            total += deleted
            if deleted < BATCH:
                break
        return total

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await asyncio.to_thread(self.run_round)
            except Exception as exc:  # the task must outlive a bad round
                _log.warning("expiry purge failed this round: %s", type(exc).__name__)
