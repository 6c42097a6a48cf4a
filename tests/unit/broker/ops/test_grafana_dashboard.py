"""The example Grafana dashboard charts only metrics the broker exports, with the labels
it gives them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from jobtoken.broker.ops import metrics

DASHBOARD = Path(__file__).parents[4] / "examples" / "grafana" / "jobtoken-broker.json"


def test_every_query_names_a_metric_the_broker_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = set(metrics._HELP) | set(metrics._GAUGE_HELP)
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bjobtoken_[a-z_]+\b", target["expr"])
    }
    assert queried <= exported, queried - exported
    assert "jobtoken_connector_needs_reauthorization" in queried
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
