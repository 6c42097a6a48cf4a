"""Token buckets: a burst, then the refill rate; one key's flood leaves the others
alone; only the first refusal of a minute is reported; the key table is bounded."""

from __future__ import annotations

from jobtoken.broker.ops import rate_limits
from jobtoken.broker.ops.rate_limits import RateLimited, RateLimiter


def test_a_burst_then_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    assert [limiter.take("a").allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.take("a")
    assert (refused.allowed, refused.retry_after) == (False, 1)
    now[0] += 0.5  # one request's worth at 2/s
    assert limiter.take("a").allowed
    assert not limiter.take("a").allowed
    assert limiter.take("b").allowed  # another key has its own bucket


def test_only_the_first_refusal_of_a_window_is_reported() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1, burst=1, clock=lambda: now[0])
    limiter.take("a")
    verdicts = [limiter.take("a") for _ in range(5)]
    assert [v.report for v in verdicts] == [True, False, False, False, False]
    now[0] += rate_limits.REPORT_SECONDS
    limiter.take("a")  # refilled: allowed
    later = limiter.take("a")
    assert later.report
    assert later.refused_since_report == 4  # the ones counted but not reported


def test_a_rate_of_zero_allows_everything() -> None:
    limiter = RateLimiter(rate=0, burst=1)
    assert all(limiter.take("a").allowed for _ in range(10_000))
    assert limiter.refusal("a", "client", "x") is None


def test_the_key_table_is_bounded() -> None:
    limiter = RateLimiter(rate=1, burst=1, clock=lambda: 0.0)
    for i in range(rate_limits.MAX_KEYS + 50):
        limiter.take(f"k{i}")
    assert len(limiter._buckets) == rate_limits.MAX_KEYS
    assert "k0" not in limiter._buckets  # the least recently used went first


def test_a_refusal_is_a_429_with_retry_after() -> None:
    limiter = RateLimiter(rate=1, burst=1, clock=lambda: 0.0)
    assert limiter.refusal("a", "client", "too many") is None
    refused = limiter.refusal("a", "client", "too many")
    assert isinstance(refused, RateLimited)
    assert (refused.status, refused.error, refused.reason) == (
        429,
        "temporarily_unavailable",
        "rate_limited",
    )
    assert refused.headers == {"Retry-After": "1"}
