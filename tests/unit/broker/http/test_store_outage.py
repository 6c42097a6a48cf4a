"""The outage refusal: 503 temporarily_unavailable with Retry-After, one log line per
outage (again at most once a minute while it lasts), one when it ends."""

from __future__ import annotations

import logging

import pytest

from jobtoken.broker.http.store_outage import REPEAT_LOG_SECONDS, StoreOutage
from jobtoken.broker.store import StoreError


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_an_outage_is_refused_with_503_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    outage = StoreOutage(clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="jobtoken.broker")
    for condition in ("no connection within 5 s", "connection refused", "connection refused"):
        refusal = outage.refuse(StoreError(condition))
        assert (refusal.status, refusal.error) == (503, "temporarily_unavailable")
        assert refusal.headers == {"Retry-After": "2"}
        assert refusal.reason == "store_unavailable"
    assert _lines(caplog) == ["store unavailable: answering 503 until it recovers"]
    now[0] += REPEAT_LOG_SECONDS
    outage.refuse(StoreError("connection refused"))
    assert len(_lines(caplog)) == 2  # a lasting outage is logged again, a minute later
    assert caplog.records[1].fields["refusals_since_last_line"] == 3  # type: ignore[attr-defined]
    assert outage.active
    outage.recovered()
    outage.recovered()
    assert _lines(caplog)[2:] == ["store available again"]
    assert not outage.active
    outage.refuse(StoreError("disk full"))
    assert len(_lines(caplog)) == 4  # a new outage is a new line
