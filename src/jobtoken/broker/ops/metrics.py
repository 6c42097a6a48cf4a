"""Counters and gauges, exposed as Prometheus text at ``GET /metrics``, for the whole
``serve`` process whatever worker answers the scrape.

Each worker counts in memory (a lock and a dict: nothing on disk on the request path).
With ``serve --workers N`` the workers share a directory (``JOBTOKEN_METRICS_DIR``,
made by ``serve``): :meth:`Metrics.share` starts a thread that writes the worker's
series to ``worker-<pid>.json`` there once a second (a new file renamed over the old,
so a reader never sees half of one), and :meth:`Metrics.render` adds up its own live
series and every other worker's last file. A scrape therefore counts every worker, the
others' last second excepted; the file of a worker that died stays, so counters never
go backwards. A gauge reads as the highest any worker wrote, unless the scrape reads
it afresh (``render(current=…)``: a connector's grant state, from the store). Labels are bounded
(reasons are the broker's fixed codes, connectors come from the config), and so is
what is read back: at most ``_MAX_SERIES`` series and ``_MAX_FILE_BYTES`` per file.

Public API: :class:`Metrics`, :data:`SHARE_ENV`.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["SHARE_ENV", "Metrics"]

#: the directory the workers of one ``serve`` share their series through
SHARE_ENV = "JOBTOKEN_METRICS_DIR"
SHARE_SECONDS = 1.0
_MAX_FILE_BYTES = 1024 * 1024

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
        "connect`), as the store says when scraped."
    ),
}
_MAX_SERIES = 1000


Series = tuple[str, tuple[tuple[str, str], ...]]


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[Series] = Counter()
        self._gauges: dict[Series, int] = {}
        self._share_dir: Path | None = None
        self._stop = threading.Event()

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
        """This worker's own value of one series."""
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            return self._gauges[key] if name in _GAUGE_HELP else self._counts[key]

    def render(self, current: Iterable[tuple[str, Mapping[str, str], int]] = ()) -> str:
        """Every worker's series; ``current`` are gauges ``(name, labels, value)`` read
        now (from the store), which replace whatever any worker last set."""
        counts, gauges = self._shared()
        with self._lock:
            counts.update(self._counts)
            for key, value in self._gauges.items():
                gauges[key] = max(gauges.get(key, value), value)
        for name, labels, value in current:
            if name not in _GAUGE_HELP:
                raise ValueError(f"unknown gauge {name}")
            gauges[(name, tuple(sorted(labels.items())))] = value
        lines: list[str] = []
        for kind, helps, series in (
            ("counter", _HELP, sorted(counts.items())),
            ("gauge", _GAUGE_HELP, sorted(gauges.items())),
        ):
            for name, help_text in helps.items():
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
                rows = [(labels, value) for (metric, labels), value in series if metric == name]
                lines += [
                    f"{name}{_labels(labels)} {value}" for labels, value in rows[:_MAX_SERIES]
                ]
        return "\n".join(lines) + "\n"

    # -- sharing between the workers of one process ---------------------------------------
    def share(self, directory: Path) -> None:
        """Write this worker's series to ``directory`` every second, and add up the
        other workers' in :meth:`render` (module docstring)."""
        self._share_dir = directory
        threading.Thread(target=self._share_loop, name="jobtoken-metrics", daemon=True).start()

    def close(self) -> None:
        """Write a last time and stop sharing."""
        if self._share_dir is not None and not self._stop.is_set():
            self._stop.set()
            self._write_share()

    def _share_loop(self) -> None:
        while not self._stop.wait(SHARE_SECONDS):
            self._write_share()

    def _write_share(self) -> None:
        assert self._share_dir is not None
        with self._lock:
            body = {
                "counters": [[n, [list(x) for x in lb], v] for (n, lb), v in self._counts.items()],
                "gauges": [[n, [list(x) for x in lb], v] for (n, lb), v in self._gauges.items()],
            }
        target = self._share_dir / f"worker-{os.getpid()}.json"
        partial = target.with_suffix(".tmp")
        try:
            partial.write_text(json.dumps(body))
            partial.replace(target)
        except OSError:
            return  # the next second tries again; scrapes show the last good file

    def _shared(self) -> tuple[Counter[Series], dict[Series, int]]:
        """Every other worker's series, from its last file."""
        counts: Counter[Series] = Counter()
        gauges: dict[Series, int] = {}
        if self._share_dir is None:
            return counts, gauges
        own = f"worker-{os.getpid()}.json"
        for path in sorted(self._share_dir.glob("worker-*.json")):
            if path.name == own:
                continue
            try:
                with path.open("rb") as handle:
                    body = json.loads(handle.read(_MAX_FILE_BYTES))
                for key, value in _series(body["counters"], _HELP):
                    counts[key] += value
                for key, value in _series(body["gauges"], _GAUGE_HELP):
                    gauges[key] = max(gauges.get(key, value), value)
            except (OSError, ValueError, TypeError, KeyError):
                continue  # a file being replaced or foreign: left out of this scrape
        return counts, gauges


def _series(rows: list[list[object]], known: dict[str, str]) -> list[tuple[Series, int]]:
    """A shared file's rows ``[name, [[label, value], ...], count]`` of known metrics."""
    out: list[tuple[Series, int]] = []
    for name, labels, value in rows[:_MAX_SERIES]:
        if isinstance(name, str) and name in known and isinstance(labels, list):
            key = (name, tuple((str(k), str(v)) for k, v in labels))
            out.append((key, int(str(value))))
    return out


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')[:128]
