"""The broker survives its PostgreSQL going away: while the database is down, /token
answers 503 ``temporarily_unavailable`` with ``Retry-After`` and issues nothing, the
log gets one line for the outage (no traceback per request), readiness fails while
liveness holds; once PostgreSQL is back, the first request succeeds, with no restart
of the broker. Real processes: a throwaway cluster, stopped and started with
``pg_ctl``, and ``jobtoken broker serve``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from support.broker_process import BrokerProcess, serving_broker
from support.postgres_cluster import PostgresCluster

#: a cluster of its own (it stops it), not the session's: marked by hand
pytestmark = pytest.mark.postgres

REQUESTS_DURING_OUTAGE = 12


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    own = PostgresCluster(durable=False)
    own.create()
    try:
        yield own
    finally:
        own.remove()


@pytest.fixture
def broker(tmp_path: Path, cluster: PostgresCluster) -> Iterator[BrokerProcess]:
    with serving_broker(tmp_path, store_dsn=cluster.dsn) as process:
        yield process


def _log_lines(broker: BrokerProcess) -> list[dict[str, object]]:
    lines = []
    for line in broker.log_path.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_database_outage_is_answered_503_and_the_first_request_after_it_succeeds(
    broker: BrokerProcess, cluster: PostgresCluster, mode: str
) -> None:
    assert broker.exchange().status_code == 200

    cluster.stop(mode)
    during = [broker.exchange() for _ in range(REQUESTS_DURING_OUTAGE)]
    for response in during:
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "temporarily_unavailable"
        assert response.headers["Retry-After"] == "2"
        assert "access_token" not in response.json()
    ready = requests.get(f"{broker.url}/healthz", timeout=30)
    assert (ready.status_code, ready.json()["store"]) == (503, "unavailable")
    assert requests.get(f"{broker.url}/livez", timeout=30).status_code == 200

    cluster.start()
    first = broker.exchange()
    assert first.status_code == 200, first.text
    assert requests.get(f"{broker.url}/healthz", timeout=30).status_code == 200

    lines = _log_lines(broker)
    outage = [
        line
        for line in lines
        if line["message"] == "store unavailable: answering 503 until it recovers"
    ]
    assert len(outage) == 1, outage  # one line for the condition, not one per request
    assert any(line["message"] == "store available again" for line in lines)
    assert not [line for line in lines if line["message"] == "unhandled error"]
    assert "Traceback" not in broker.log_path.read_text()

    verified = broker.cli("audit", "verify", "--config", str(broker.config_path))
    assert verified.returncode == 0, verified.stderr
    assert b"audit chain intact: 2 record(s)" in verified.stdout  # the two tokens issued
