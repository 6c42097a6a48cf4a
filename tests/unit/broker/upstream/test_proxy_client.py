"""The proxy's pooled async upstream clients, against real loopback servers: connections
are reused, a response is cut at the size cap as it streams, a stalled or dripping
upstream at the time cap, and closing the pool closes its connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from jobtoken.broker.config import ProxyConfig
from jobtoken.broker.connectors.model import Connector
from jobtoken.broker.upstream.proxy_client import UpstreamError, UpstreamPool, UpstreamResponse
from support.contacts_api import ContactsApi
from support.loopback import free_port
from support.unruly_api import UnrulyApi

CONFIG = ProxyConfig(timeout_seconds=1, max_response_bytes=4096)
#: for calls that should succeed, on a busy machine
PATIENT = ProxyConfig(timeout_seconds=20, max_response_bytes=4096)
T = TypeVar("T")


def _pool(url: str, config: ProxyConfig = CONFIG) -> UpstreamPool:
    return UpstreamPool({"contacts": Connector("contacts", base_url=url)}, config)


def _run(pool: UpstreamPool, body: Callable[[UpstreamPool], Coroutine[Any, Any, T]]) -> T:
    async def main() -> T:
        pool.start()
        try:
            return await body(pool)
        finally:
            await pool.aclose()

    return asyncio.run(main())


def _wait_for(condition: Callable[[], bool], seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def _bearer(api: ContactsApi) -> list[tuple[bytes, bytes]]:
    return [(b"Authorization", f"Bearer {api.api_key}".encode())]


def _failure(url: str, path: str) -> tuple[UpstreamError, float]:
    async def call(pool: UpstreamPool) -> UpstreamResponse:
        return await pool.send("contacts", "GET", url + path, [], b"")

    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        _run(_pool(url), call)
    return caught.value, time.monotonic() - started


def test_twenty_calls_share_one_keep_alive_connection() -> None:
    with ContactsApi() as api:

        async def calls(pool: UpstreamPool) -> list[int]:
            url = api.url + "/v1/contacts/1"
            return [(await pool.send("contacts", "GET", url, _bearer(api), b"")).status
                    for _ in range(20)]  # fmt: skip

        assert _run(_pool(api.url, PATIENT), calls) == [200] * 20
        assert api.connections == 1
        assert api.requests[-1] == ("GET", "/v1/contacts/1", True)


def test_concurrent_calls_are_bounded_and_their_connections_reused() -> None:
    with ContactsApi() as api:

        async def calls(pool: UpstreamPool) -> list[int]:
            url = api.url + "/v1/contacts"
            for _ in range(3):
                answers = await asyncio.gather(
                    *(pool.send("contacts", "GET", url, _bearer(api), b"") for _ in range(8))
                )
            return [a.status for a in answers]

        assert _run(_pool(api.url, PATIENT), calls) == [200] * 8
        assert len(api.requests) == 24
        assert api.connections <= 8


def test_an_endless_chunked_answer_is_cut_as_soon_as_it_passes_the_cap() -> None:
    with UnrulyApi(endless_seconds=10) as api:
        error, took = _failure(api.url, "/v1/contacts/endless")
        assert error.kind == "too_large"
        assert took < 2
        assert _wait_for(lambda: api.aborted == 1)  # the broker hung up: it did not read on


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    with UnrulyApi(stall_seconds=5) as api:
        error, took = _failure(api.url, "/v1/contacts/declared")
        assert error.kind == "too_large"
        assert took < 0.9  # before the time cap: nothing was waited for


@pytest.mark.parametrize("path", ["/v1/contacts/stall", "/v1/contacts/drip"])
def test_an_upstream_slower_than_the_time_cap_is_too_slow(path: str) -> None:
    """A stall trips the read timeout; a drip (a byte every 0.1 s) the overall deadline."""
    with UnrulyApi(stall_seconds=5, drip_interval=0.1) as api:
        error, took = _failure(api.url, path)
        assert error.kind == "too_slow"
        assert 0.9 < took < 2.5
        assert _wait_for(lambda: api.aborted == 1)


def test_an_unreachable_upstream_is_named_without_url_or_credential() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async def call(pool: UpstreamPool) -> UpstreamResponse:
        headers = [(b"Authorization", b"Bearer ck_live_secret")]
        return await pool.send("contacts", "GET", url + "/v1/contacts?q=1", headers, b"")

    with pytest.raises(UpstreamError) as caught:
        _run(_pool(url), call)
    assert caught.value.kind == "unreachable"
    assert caught.value.detail == "could not be reached (ConnectError)"
    # what the job reads: a bad gateway naming neither the URL nor the credential
    assert (caught.value.status, caught.value.error) == (502, "bad_gateway")
    assert str(caught.value) == "the connector could not be reached (ConnectError)"


def test_proxy_variables_of_the_process_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """With trust_env the call would go to this dead proxy and fail (ConnectError)."""
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with ContactsApi() as api:

        async def call(pool: UpstreamPool) -> int:
            url = api.url + "/v1/contacts"
            return (await pool.send("contacts", "GET", url, _bearer(api), b"")).status

        assert _run(_pool(api.url, PATIENT), call) == 200


def test_closing_the_pool_closes_its_connections_and_refuses_later_calls() -> None:
    with ContactsApi() as api:
        pool = _pool(api.url, PATIENT)

        async def scenario() -> UpstreamError:
            pool.start()
            url = api.url + "/v1/contacts"
            assert (await pool.send("contacts", "GET", url, _bearer(api), b"")).status == 200
            client = pool.clients["contacts"]
            assert api.open_connections == 1
            await pool.aclose()
            assert client.is_closed
            assert pool.clients == {}
            with pytest.raises(UpstreamError) as caught:
                await pool.send("contacts", "GET", url, _bearer(api), b"")
            return caught.value

        assert asyncio.run(scenario()).kind == "unreachable"
        assert _wait_for(lambda: api.open_connections == 0)
        assert api.connections == 1


def test_only_proxied_connectors_get_a_client() -> None:
    connectors = {
        "contacts": Connector("contacts", base_url="http://127.0.0.1:9"),
        "offline": Connector("offline"),
    }
    pool = UpstreamPool(connectors, CONFIG)

    async def names() -> list[str]:
        pool.start()
        try:
            return sorted(pool.clients)
        finally:
            await pool.aclose()

    assert asyncio.run(names()) == ["contacts"]
