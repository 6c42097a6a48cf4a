"""The broker's one bounded synchronous request, against a real loopback server that
breaks each bound: a drip is cut at the deadline whether it is chunked or under a
declared length, an endless body at the size cap, and an answer read to its end leaves
its connection to the next call."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from jobtoken.broker.upstream.bounded_http import (
    BoundedHttpError,
    BoundedResponse,
    request_bounded,
)
from support.unruly_api import UnrulyApi

MAX_BYTES = 4096


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


def _get(session: requests.Session, url: str, total_seconds: float = 1.0) -> BoundedResponse:
    return request_bounded(
        session,
        "GET",
        url,
        headers={"Accept": "application/json"},
        max_bytes=MAX_BYTES,
        connect_timeout=0.5,
        read_timeout=0.5,
        total_seconds=total_seconds,
    )


def _failure(session: requests.Session, url: str) -> tuple[BoundedHttpError, float]:
    started = time.monotonic()
    with pytest.raises(BoundedHttpError) as caught:
        _get(session, url)
    return caught.value, time.monotonic() - started


@pytest.mark.parametrize("path", ["/v1/contacts/drip", "/v1/contacts/drip_declared"])
def test_a_drip_is_cut_at_the_deadline(session: requests.Session, path: str) -> None:
    """A byte every 0.1 s: no read waits its 0.5 s, but the 1 s deadline passes. Under a
    declared length, a reader that waits for a whole 8 KiB buffer would wait 5 s."""
    with UnrulyApi(stall_seconds=5, drip_interval=0.1) as api:
        error, took = _failure(session, api.url + path)
    assert (error.kind, str(error)) == ("too_slow", "took too long to answer")
    assert 0.9 < took < 1.6


def test_a_stall_is_cut_at_the_read_timeout(session: requests.Session) -> None:
    with UnrulyApi(stall_seconds=5) as api:
        error, took = _failure(session, api.url + "/v1/contacts/stall")
    assert error.kind == "unreachable"
    assert str(error).startswith("could not be reached (")
    assert took < 1.0


def test_an_endless_body_is_cut_at_the_size_cap(session: requests.Session) -> None:
    with UnrulyApi(endless_seconds=10) as api:
        error, took = _failure(session, api.url + "/v1/contacts/endless")
    assert (error.kind, str(error)) == ("too_large", f"sent more than {MAX_BYTES} bytes")
    assert took < 1.0


def test_a_declared_length_over_the_cap_is_refused_before_reading(
    session: requests.Session,
) -> None:
    with UnrulyApi(stall_seconds=5) as api:
        error, took = _failure(session, api.url + "/v1/contacts/declared")
    assert error.kind == "too_large"
    assert took < 0.5  # the server sent no byte of its body: nothing was waited for


def test_an_answer_read_to_its_end_leaves_its_connection_to_the_next_call(
    session: requests.Session,
) -> None:
    with UnrulyApi() as api:
        answers = [_get(session, api.url + "/v1/contacts/small", 20.0) for _ in range(3)]
        assert [(a.status, a.body) for a in answers] == [(200, b'{"ok": true}')] * 3
        assert api.connections == 1
