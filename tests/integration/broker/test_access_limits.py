"""Who may look: an introspection client limited to named connectors, and /metrics
behind a bearer token — through the real ASGI app over a real config and SQLite store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from jobtoken.broker.config import ConfigError, load_config
from support.broker_app import exchange, in_process_broker
from support.broker_process import BrokerProcess
from support.contacts_api import ContactsApi
from support.oidc_issuer import FakeOidcIssuer

METRICS_TOKEN = "metrics-bearer-token-for-the-test"
LIMITED_SECRET = "limited-client-secret"


def limit_config(process: BrokerProcess, connectors: str) -> None:
    """Add a client limited to `connectors`, and a metrics token, to the process's config."""
    (process.workdir / "limited.secret").write_text(LIMITED_SECRET)
    (process.workdir / "metrics.token").write_text(METRICS_TOKEN)
    text = process.config_path.read_text()
    text = text.replace("[server]\n", '[server]\nmetrics_token_file = "metrics.token"\n', 1)
    text = text.replace(
        "[webhook]\n",
        f'[[introspection_clients]]\nid = "limited"\nsecret_file = "limited.secret"\n'
        f"connectors = {connectors}\n[webhook]\n",
        1,
    )
    process.config_path.write_text(text)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerProcess, TestClient]]:
    edit = lambda process: limit_config(process, '["vault"]')  # noqa: E731
    with in_process_broker(tmp_path_factory.mktemp("limits"), edit) as (process, _, client):
        yield process, client


def test_a_limited_client_learns_nothing_of_another_connectors_token(
    app: tuple[BrokerProcess, TestClient],
) -> None:
    process, client = app
    token = exchange(process, client)

    limited = client.post("/introspect", data={"token": token}, auth=("limited", LIMITED_SECRET))
    unlimited = client.post(
        "/introspect", data={"token": token}, auth=("resource-server", process.client_secret)
    )

    assert limited.status_code == 200
    assert limited.json() == {"active": False}  # exactly, as for an unknown token
    assert unlimited.json()["active"] is True
    assert unlimited.json()["aud"] == "contacts"
    with sqlite3.connect(process.db_path) as db:
        reasons = [r for (r,) in db.execute("SELECT record FROM audit ORDER BY seq")]
    assert any("connector_not_permitted_for_client" in r and '"limited"' in r for r in reasons)


def test_metrics_need_the_bearer_token(app: tuple[BrokerProcess, TestClient]) -> None:
    _, client = app
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    non_ascii = {"Authorization": "Bearer tökén".encode()}  # compared as bytes, no 500
    assert client.get("/metrics", headers=non_ascii).status_code == 401
    missing_scheme = client.get("/metrics", headers={"Authorization": METRICS_TOKEN})
    assert missing_scheme.status_code == 401
    allowed = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert allowed.status_code == 200
    assert "jobtoken_" in allowed.text


def test_a_client_limited_to_an_unknown_connector_is_a_config_error(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with FakeOidcIssuer() as issuer, ContactsApi() as contacts:
        process = BrokerProcess(tmp_path_factory.mktemp("bad-limits"), issuer, contacts)
        process.write_files()
        limit_config(process, '["crm"]')
        with pytest.raises(ConfigError, match="limited: connectors names crm"):
            load_config(process.config_path)
