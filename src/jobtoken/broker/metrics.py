"""Process-local counters, exposed as Prometheus text at ``GET /metrics``.

With ``--workers N`` each worker counts its own requests (Prometheus sums the scrapes
of a service; a scrape reaches one worker). Labels are bounded: reasons are the
broker's fixed codes, connectors come from the config.

Public API: :class:`Metrics`.
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["Metrics"]

_HELP = {
    "jobtoken_exchanges_total": "Token exchanges by outcome and reason.",
    "jobtoken_revocations_total": "Tokens revoked, by path (revoke endpoint or webhook).",
    "jobtoken_introspections_total": "Introspection requests by result.",
    "jobtoken_proxy_requests_total": "Proxied connector requests by outcome.",
    "jobtoken_webhooks_total": "GitHub webhook deliveries by outcome.",
    "jobtoken_store_unavailable_total": "Requests answered 503 because the store was down.",
    "jobtoken_rate_limited_total": "Requests answered 429, by limit (client or repository).",
    "jobtoken_upstream_refreshes_total": "Refreshes of connectors' OAuth grants, by outcome.",
}
_GAUGE_HELP = {
    "jobtoken_connector_needs_reauthorization": (
        "1 while a connector's OAuth grant is dead at its provider (run `jobtoken broker "
        "connect`), as this worker last saw it."
    ),
}
_MAX_SERIES = 1000


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._gauges: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}

    def count(self, name: str, amount: int = 1, **labels: str) -> None:
        if name not in _HELP:
            raise ValueError(f"unknown metric {name}")
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            if key in self._counts or len(self._counts) < _MAX_SERIES:
                self._counts[key] += amount

    def set(self, name: str, value: int, **labels: str) -> None:
        """Set a gauge."""
        if name not in _GAUGE_HELP:
            raise ValueError(f"unknown gauge {name}")
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            if key in self._gauges or len(self._gauges) < _MAX_SERIES:
                self._gauges[key] = value

    def value(self, name: str, **labels: str) -> int:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            return self._gauges[key] if name in _GAUGE_HELP else self._counts[key]

    def render(self) -> str:
        with self._lock:
            items = sorted(self._counts.items())
            gauges = sorted(self._gauges.items())
        lines: list[str] = []
        for kind, helps, series in (("counter", _HELP, items), ("gauge", _GAUGE_HELP, gauges)):
            for name, help_text in helps.items():
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
                for (metric, labels), value in series:
                    if metric == name:
                        lines.append(f"{name}{_labels(labels)} {value}")
        return "\n".join(lines) + "\n"


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')[:128]
