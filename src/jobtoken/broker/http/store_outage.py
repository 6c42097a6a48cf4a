"""What the broker answers, and logs, while its store cannot be reached or commit.

Every request that needs the store gets ``503 temporarily_unavailable`` with
``Retry-After`` (the action retries on it), and nothing is issued: no token leaves
the broker without its durable audit record. The log gets one line when an outage
starts (and again at most once a minute while it lasts, with its latest condition and
the number of refusals since), and one line when the store answers again; never a
traceback per request.

Public API: :class:`StoreOutage`, :data:`RETRY_AFTER_SECONDS`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from jobtoken.broker.errors import BrokerError
from jobtoken.broker.ops.logs import log_event
from jobtoken.broker.store import StoreError

__all__ = ["RETRY_AFTER_SECONDS", "StoreOutage"]

RETRY_AFTER_SECONDS = 2
#: least time between two log lines for one lasting condition
REPEAT_LOG_SECONDS = 60.0


class StoreOutage:
    """Turns :class:`StoreError` into the 503 refusal, and logs the outage once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._condition = ""
        self._logged_at = 0.0
        self._refusals = 0

    @property
    def active(self) -> bool:
        return bool(self._condition)

    def refuse(self, exc: StoreError) -> BrokerError:
        """Record one request refused because of ``exc``; the error to answer it with."""
        condition = str(exc)[:300]
        with self._lock:
            self._refusals += 1
            now = self._clock()
            if not self._condition or now - self._logged_at >= REPEAT_LOG_SECONDS:
                log_event(
                    "store unavailable: answering 503 until it recovers",
                    logging.ERROR,
                    condition=condition,
                    refusals_since_last_line=self._refusals,
                )
                self._condition, self._logged_at, self._refusals = condition, now, 0
        return BrokerError(
            "temporarily_unavailable",
            "the broker's store is unavailable; retry shortly",
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            reason="store_unavailable",
        )

    def recovered(self) -> None:
        """A request that needed the store succeeded: log the end of an outage."""
        if not self._condition:
            return
        with self._lock:
            if self._condition:
                log_event("store available again", refusals_since_last_line=self._refusals)
                self._condition, self._refusals = "", 0
