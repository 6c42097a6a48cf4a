from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobtoken.broker.ops.metrics import Metrics


def test_counters_render_as_prometheus_text() -> None:
    metrics = Metrics()
    metrics.count("jobtoken_exchanges_total", outcome="issued", connector="contacts")
    metrics.count("jobtoken_exchanges_total", outcome="issued", connector="contacts")
    metrics.count("jobtoken_webhooks_total", outcome='bad"sig\n')
    text = metrics.render()
    assert "# TYPE jobtoken_exchanges_total counter" in text
    assert 'jobtoken_exchanges_total{connector="contacts",outcome="issued"} 2' in text
    assert 'jobtoken_webhooks_total{outcome="bad\\"sig\\n"} 1' in text
    assert metrics.value("jobtoken_exchanges_total", outcome="issued", connector="contacts") == 2


def test_unknown_metrics_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        Metrics().count("made_up_total")


def test_the_number_of_series_is_bounded() -> None:
    metrics = Metrics()
    for i in range(1500):
        metrics.count("jobtoken_webhooks_total", outcome=str(i))
    assert metrics.render().count("jobtoken_webhooks_total{") == 1000


def test_gauges_read_at_the_scrape_replace_what_any_worker_last_set(tmp_path: Path) -> None:
    """A connector's grant state comes from the store at each scrape, the same on every
    worker: a 1 a worker (this one, or another through its file) once set is gone."""
    (tmp_path / "worker-1.json").write_text(
        json.dumps(
            {
                "counters": [],
                "gauges": [["jobtoken_connector_needs_reauthorization", [["connector", "crm"]], 1]],
            }
        )
    )
    metrics = Metrics()
    metrics._share_dir = tmp_path  # read the other worker's file, as share() does
    metrics.set("jobtoken_connector_needs_reauthorization", 1, connector="crm")
    assert 'jobtoken_connector_needs_reauthorization{connector="crm"} 1' in metrics.render()
    text = metrics.render([("jobtoken_connector_needs_reauthorization", {"connector": "crm"}, 0)])
    assert 'jobtoken_connector_needs_reauthorization{connector="crm"} 0' in text
    assert 'jobtoken_connector_needs_reauthorization{connector="crm"} 1' not in text
    with pytest.raises(ValueError, match="unknown gauge"):
        metrics.render([("made_up", {}, 1)])
