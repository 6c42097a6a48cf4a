from __future__ import annotations

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
