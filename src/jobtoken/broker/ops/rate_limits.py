"""Rate limits: token buckets per client address and per repository, so that no one
caller can flood the broker or its audit store.

- A bucket holds up to ``burst`` requests and refills at ``rate`` a second; a request
  that finds it empty is refused with ``429 temporarily_unavailable`` and a
  ``Retry-After`` of the seconds until a request fits again (the action waits that).
- ``[limits] client_*`` applies to every request of one client address (off by
  default: behind a reverse proxy all requests share the proxy's address);
  ``repository_*`` to the exchanges of one repository, by the ``repository_id`` of
  its *verified* ID token, so a forged token cannot spend another repository's budget.
- A refused request is counted, not audited one record each: the first refusal of a
  key in a minute is audited (reason ``rate_limited``) and logged, the others only
  add to ``jobtoken_rate_limited_total`` and to the count in the next minute's line.
  This bounds what a flood can write to disk.
- Buckets live in the worker process (``--workers N`` allows N times the rate per
  host); at most ``MAX_KEYS`` keys are kept, the least recently used dropped first.

Public API: :class:`RateLimiter`, :class:`Verdict`, :class:`RateLimited`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from jobtoken.broker.errors import BrokerError
from jobtoken.broker.ops.logs import log_event

__all__ = ["MAX_KEYS", "RateLimited", "RateLimiter", "Verdict"]

MAX_KEYS = 10_000
#: the window in which only the first refusal of a key is audited and logged
REPORT_SECONDS = 60.0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0  # whole seconds until a request fits, when refused
    report: bool = False  # the first refusal of this key in the window: audit and log it
    refused_since_report: int = 0  # refusals counted, not reported, since the last report


@dataclass
class _Bucket:
    tokens: float
    updated: float
    reported_at: float = -math.inf
    unreported: int = 0


class RateLimiter:
    """Keyed token buckets of one ``rate``/``burst``; ``rate == 0`` allows everything."""

    def __init__(self, rate: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def refusal(self, key: str, limit: str, description: str) -> RateLimited | None:
        """None when ``key`` may go on; else the 429 to answer with."""
        verdict = self.take(key)
        return None if verdict.allowed else RateLimited(verdict, limit, description)

    def take(self, key: str) -> Verdict:
        """Take one request from ``key``'s bucket, if it holds one."""
        if not self.enabled:
            return Verdict(True)
        now = self._clock()
        with self._lock:
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                bucket = _Bucket(float(self.burst), now)
            else:
                bucket.tokens = min(
                    float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate
                )
                bucket.updated = now
            self._buckets[key] = bucket  # most recently used last
            while len(self._buckets) > MAX_KEYS:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return Verdict(True)
            retry_after = max(1, math.ceil((1.0 - bucket.tokens) / self.rate))
            if now - bucket.reported_at >= REPORT_SECONDS:
                unreported, bucket.unreported, bucket.reported_at = bucket.unreported, 0, now
                return Verdict(False, retry_after, True, unreported)
            bucket.unreported += 1
            return Verdict(False, retry_after)


class RateLimited(BrokerError):
    """429 ``temporarily_unavailable`` for a refused request; ``report`` says whether
    this refusal is the one of its window to audit."""

    def __init__(self, verdict: Verdict, limit: str, description: str) -> None:
        super().__init__(
            "temporarily_unavailable",
            f"{description}; retry in {verdict.retry_after} s",
            status=429,
            reason="rate_limited",
            headers={"Retry-After": str(verdict.retry_after)},
        )
        self.report, self.limit = verdict.report, limit
        if verdict.report:
            log_event(
                "rate limited",
                limit=limit,
                refused_unreported_since_last_line=verdict.refused_since_report,
            )
