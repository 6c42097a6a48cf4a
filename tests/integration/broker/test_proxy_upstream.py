"""The real broker app's proxy against real loopback upstreams: its calls share one
keep-alive connection, an answer over ``max_response_bytes`` or slower than
``timeout_seconds`` gets 502 ``bad_gateway``, and stopping the app closes the
upstream connections."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from jobtoken.broker.upstream.proxy_client import UpstreamPool
from support.broker_app import exchange, in_process_broker
from support.broker_process import BrokerProcess
from support.unruly_api import UnrulyApi


def _wait_for(condition: Callable[[], bool], seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_proxied_calls_reuse_one_upstream_connection_closed_when_the_app_stops(
    tmp_path: Path,
) -> None:
    with in_process_broker(tmp_path) as (process, contacts, client):
        bearer = {"Authorization": f"Bearer {exchange(process, client)}"}
        pool: UpstreamPool = client.app.state.upstreams  # type: ignore[attr-defined]
        before = contacts.connections
        statuses = [
            client.get(f"/proxy/contacts/v1/contacts/{i % 3 + 1}", headers=bearer).status_code
            for i in range(20)
        ]
        assert statuses == [200] * 20
        assert contacts.connections - before == 1
        assert contacts.open_connections == 1
        assert [r[2] for r in contacts.requests[-20:]] == [True] * 20  # the credential, injected
        upstream_client = pool.clients["contacts"]
    assert upstream_client.is_closed
    assert pool.clients == {}
    assert _wait_for(lambda: contacts.open_connections == 0)


def _to(unruly: UnrulyApi) -> Callable[[BrokerProcess], None]:
    def edit(process: BrokerProcess) -> None:
        text = process.config_path.read_text()
        text = text.replace(f'base_url = "{process.contacts.url}"', f'base_url = "{unruly.url}"')
        text += "[proxy]\ntimeout_seconds = 1\nmax_response_bytes = 4096\n"
        process.config_path.write_text(text)

    return edit


def test_answers_over_the_size_or_time_cap_are_bad_gateway(tmp_path: Path) -> None:
    with (
        UnrulyApi(endless_seconds=10, stall_seconds=5) as unruly,
        in_process_broker(tmp_path, _to(unruly)) as (process, _, client),
    ):
        bearer = {"Authorization": f"Bearer {exchange(process, client)}"}
        small = client.get("/proxy/contacts/v1/contacts/small", headers=bearer)
        assert (small.status_code, small.json()) == (200, {"ok": True})
        for path, description in (
            ("endless", "the connector's response is too large"),
            ("declared", "the connector's response is too large"),
            ("stall", "the connector did not answer in time"),
            ("drip", "the connector did not answer in time"),
        ):
            started = time.monotonic()
            response = client.get(f"/proxy/contacts/v1/contacts/{path}", headers=bearer)
            assert time.monotonic() - started < 2.5, path
            assert response.status_code == 502, path
            assert response.json() == {"error": "bad_gateway", "error_description": description}
            assert response.headers["cache-control"] == "no-store"
        after = client.get("/proxy/contacts/v1/contacts/small", headers=bearer)
        assert after.status_code == 200  # a refused answer does not poison the pool
