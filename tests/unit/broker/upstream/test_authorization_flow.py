"""The loopback authorization of ``broker connect`` (upstream/authorization_flow.py), with
real sockets: the redirect it accepts, and a deadline that holds whatever a client does."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from jobtoken.broker.connectors.model import OAuthSettings
from jobtoken.broker.upstream.authorization_flow import (
    MAX_CONNECTIONS,
    AuthorizationFailed,
    LoopbackAuthorization,
)

OAUTH = OAuthSettings(
    client_id="client",
    token_url="https://provider.example/token",
    authorize_url="https://provider.example/authorize",
    scopes=("contacts.read",),
)


class Waiting:
    """``flow.wait(timeout)`` in a thread: its code or its failure, and how long it took."""

    def __init__(self, flow: LoopbackAuthorization, timeout: float) -> None:
        self.code, self.failure, self.seconds = "", "", 0.0
        self._thread = threading.Thread(target=self._run, args=(flow, timeout), daemon=True)
        self._thread.start()

    def _run(self, flow: LoopbackAuthorization, timeout: float) -> None:
        started = time.monotonic()
        try:
            self.code = flow.wait(timeout)
        except AuthorizationFailed as exc:
            self.failure = str(exc)
        self.seconds = time.monotonic() - started

    def ended_within(self, seconds: float) -> bool:
        self._thread.join(seconds)
        return not self._thread.is_alive()


@pytest.fixture
def flow() -> Iterator[LoopbackAuthorization]:
    running = LoopbackAuthorization(OAUTH)
    try:
        yield running
    finally:
        running.close()


def _idle_connections(flow: LoopbackAuthorization, count: int = 1) -> list[socket.socket]:
    """Connections to the callback port that send nothing, as any local process can."""
    port = urlsplit(flow.redirect_uri).port
    return [socket.create_connection(("127.0.0.1", port or 0), timeout=5) for _ in range(count)]


def _callback(flow: LoopbackAuthorization, **query: str) -> httpx.Response:
    return httpx.get(flow.redirect_uri, params=query, timeout=5, trust_env=False)


def test_the_authorization_url_carries_state_and_an_s256_challenge(
    flow: LoopbackAuthorization,
) -> None:
    query = parse_qs(urlsplit(flow.authorization_url).query)
    assert query["state"] == [flow.state]
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [flow.redirect_uri]
    assert query["scope"] == ["contacts.read"]


def test_an_idle_connection_does_not_hold_back_the_redirect_behind_it(
    flow: LoopbackAuthorization,
) -> None:
    waiting = Waiting(flow, 20)
    idle = _idle_connections(flow)
    time.sleep(0.3)  # the listener has accepted the idle connection first
    answer = _callback(flow, code="the-code", state=flow.state)
    assert answer.status_code == 200
    assert waiting.ended_within(5), "the redirect queued behind an idle connection was not served"
    assert waiting.code == "the-code"
    for connection in idle:
        connection.close()


def test_with_an_idle_connection_open_the_deadline_still_holds(
    flow: LoopbackAuthorization,
) -> None:
    waiting = Waiting(flow, 3)
    idle = _idle_connections(flow)
    assert waiting.ended_within(6), "the wait outlived its 3 s deadline"
    assert 2.9 <= waiting.seconds < 4.5
    assert "no redirect" in waiting.failure
    for connection in idle:
        connection.close()


def test_connections_beyond_the_limit_are_closed_and_the_redirect_still_served(
    flow: LoopbackAuthorization,
) -> None:
    waiting = Waiting(flow, 20)
    idle = _idle_connections(flow, MAX_CONNECTIONS + 4)
    time.sleep(0.5)
    for connection in idle[:MAX_CONNECTIONS]:
        connection.close()  # the slots come free; the extra ones were refused
    time.sleep(0.3)
    assert _callback(flow, code="c", state=flow.state).status_code == 200
    assert waiting.ended_within(5)
    assert waiting.code == "c"
    for connection in idle[MAX_CONNECTIONS:]:
        assert connection.recv(1) == b""  # closed unanswered
        connection.close()


def test_a_redirect_with_another_state_is_refused_and_the_wait_goes_on(
    flow: LoopbackAuthorization,
) -> None:
    waiting = Waiting(flow, 20)
    assert _callback(flow, code="stolen", state="guess").status_code == 400
    assert not waiting.ended_within(0.3)
    assert _callback(flow, code="real", state=flow.state).status_code == 200
    assert waiting.ended_within(5)
    assert waiting.code == "real"


def test_an_error_redirect_ends_the_wait_with_the_providers_code(
    flow: LoopbackAuthorization,
) -> None:
    waiting = Waiting(flow, 20)
    assert _callback(flow, error="access_denied", state=flow.state).status_code == 400
    assert waiting.ended_within(5)
    assert waiting.failure == "the provider answered access_denied"


def test_a_pasted_redirect_url_gives_its_code(flow: LoopbackAuthorization) -> None:
    pasted = f"  {flow.redirect_uri}?code=the-code&state={flow.state}\n"
    assert flow.code_from_pasted(pasted) == "the-code"


@pytest.mark.parametrize(
    ("pasted", "message"),
    [
        ("{uri}?code=c&state=guess", "state differs"),
        ("{uri}?code=c&state={state}&state={state}", "state differs"),
        ("{uri}?code=c", "state differs"),
        ("https://attacker.example/callback?code=c&state={state}", "not a redirect to"),
        ("{uri}/more?code=c&state={state}", "not a redirect to"),
        ("c", "not a redirect to"),
        ("{uri}?state={state}", "a redirect without a code"),
        ("{uri}?error=access_denied&state={state}", "the provider answered access_denied"),
        ("{uri}?code=" + "c" * 9000 + "&state={state}", "not a redirect to"),
    ],
)
def test_a_pasted_url_that_is_not_our_redirect_is_refused(
    flow: LoopbackAuthorization, pasted: str, message: str
) -> None:
    with pytest.raises(AuthorizationFailed, match=message):
        flow.code_from_pasted(pasted.format(uri=flow.redirect_uri, state=flow.state))


def test_a_redirect_host_of_localhost_is_named_but_127_0_0_1_is_bound() -> None:
    flow = LoopbackAuthorization(OAUTH, host="localhost")
    try:
        assert flow.redirect_uri.startswith("http://localhost:")
        waiting = Waiting(flow, 20)
        port = urlsplit(flow.redirect_uri).port
        answer = httpx.get(
            f"http://127.0.0.1:{port}/callback",
            params={"code": "c", "state": flow.state},
            timeout=5,
            trust_env=False,
        )
        assert answer.status_code == 200
        assert waiting.ended_within(5)
        assert waiting.code == "c"
    finally:
        flow.close()
