"""Rate limits in the real app: a repository's exchanges past its burst get 429
``temporarily_unavailable`` with ``Retry-After``, counted always and audited once a
minute; a client address past its own limit likewise, on every endpoint but the
health checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from jobtoken.broker.store import open_store
from support.broker_app import in_process_broker
from support.broker_process import BrokerProcess

EXCHANGE = {
    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
    "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
    "resource": "contacts",
    "scope": "contacts.read",
}


def _limits(text: str) -> Callable[[BrokerProcess], None]:
    def edit(process: BrokerProcess) -> None:
        with process.config_path.open("a") as config:
            config.write(f"[limits]\n{text}\n")

    return edit


def _rate_limited_records(process: BrokerProcess) -> int:
    store = open_store("sqlite", path=process.db_path)
    try:
        return sum(json.loads(r.record)["reason"] == "rate_limited" for r in store.audit_rows())
    finally:
        store.close()


def test_a_repository_past_its_burst_is_refused_429_and_audited_once(tmp_path: Path) -> None:
    edit = _limits("repository_rate = 1\nrepository_burst = 3")
    with in_process_broker(tmp_path, edit) as (process, _, client):
        answers = [
            client.post("/token", data={**EXCHANGE, "subject_token": process.id_token()})
            for _ in range(6)
        ]
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        for refused in answers[3:]:
            assert refused.status_code == 429
            assert refused.json()["error"] == "temporarily_unavailable"
            assert refused.headers["Retry-After"] == "1"
            assert "access_token" not in refused.json()
        # another repository's bucket is its own: refused by its policy, not the limit
        other = client.post(
            "/token",
            data={
                **EXCHANGE,
                "subject_token": process.id_token(repository_id="1", repository="o/r"),
            },
        )
        assert other.status_code == 400
        assert 'jobtoken_rate_limited_total{limit="repository"} 3' in client.get("/metrics").text
    assert _rate_limited_records(process) == 1  # counted three times, written once


def test_a_client_address_past_its_limit_is_refused_but_health_checks_are_not(
    tmp_path: Path,
) -> None:
    edit = _limits("client_rate = 1\nclient_burst = 2")
    with in_process_broker(tmp_path, edit) as (process, _, client):
        statuses = [client.post("/revoke", data={"token": "x"}).status_code for _ in range(4)]
        assert statuses == [200, 200, 429, 429]
        assert all(client.get("/healthz").status_code == 200 for _ in range(5))
        limited = client.post("/token", data={**EXCHANGE, "subject_token": process.id_token()})
        assert limited.status_code == 429
    assert _rate_limited_records(process) == 1
