"""What the broker's proxy adds to a connector call: the same upstream, direct and proxied.

Starts the loopback contacts API (``support.contacts_api``: HTTP/1.1 keep-alive, the
API key checked on every call) and a real ``jobtoken broker serve`` (one worker, SQLite,
the default config of ``support.broker_process``: info-level request logs, audit on)
whose ``contacts`` connector proxies to it; gets one broker token through
``POST /token``; then, for each client count, sends the same number of
``GET /v1/contacts`` from that many threads (one pooled ``requests.Session`` each),
once straight to the API with its key and once through ``/proxy/contacts/…`` with the
broker token, alternating the two in rounds so that both see the same machine. Prints,
in Markdown: date, command, machine, requests/s and latency percentiles of both paths,
the p50 the proxy adds and proxied/direct throughput, against the targets (p50 added
≤ 1 ms, proxied throughput ≥ 50 % of direct; printed and checked, not asserted).

    PYTHONPATH=tests .venv/bin/python bench/proxy_overhead.py [--requests 2000]
        [--clients 1,4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import requests
from smoke import smoke_args

from support.broker_process import running_broker
from support.contacts_api import ContactsApi
from support.oidc_issuer import FakeOidcIssuer

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105
TARGET_ADDED_P50_MS = 1.0
TARGET_THROUGHPUT_RATIO = 0.5
WARM_UP = 100
#: direct: the API with its key; proxied: through the broker; healthz: a broker round trip
#: that forwards nothing (uvicorn, Starlette, the request log, one store read), the floor
#: under any proxied call
PATHS = ("direct", "proxied", "broker /healthz")


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    errors: int = 0

    def p(self, quantile: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * quantile))] * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _broker_token(broker_url: str, id_token: str) -> str:
    response = requests.post(
        f"{broker_url}/token",
        data={
            "grant_type": GRANT,
            "subject_token": id_token,
            "subject_token_type": ID_TOKEN_TYPE,
            "resource": "contacts",
            "scope": "contacts.read",
        },
        timeout=30,
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def _load(
    url: str, headers: dict[str, str], expected: bytes, requests_total: int, clients: int
) -> Sample:
    """``requests_total`` GETs of ``url`` from ``clients`` threads, one session each; an
    answer other than 200 starting with ``expected`` counts as an error."""
    sessions = [requests.Session() for _ in range(clients)]
    for session in sessions:  # open each client's keep-alive connection before timing
        session.trust_env = False  # no proxy-variable lookup per call (~0.5 ms in the client)
        session.get(url, headers=headers, timeout=30)
    sample = Sample()
    lock = threading.Lock()

    def worker(index: int) -> None:
        session, mine = sessions[index], []
        errors = 0
        for _ in range(requests_total // clients):
            started = time.perf_counter()
            response = session.get(url, headers=headers, timeout=30)
            mine.append(time.perf_counter() - started)
            errors += response.status_code != 200 or not response.content.startswith(expected)
        with lock:
            sample.latencies.extend(mine)
            sample.errors += errors

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    sample.wall = time.perf_counter() - started
    for session in sessions:
        session.close()
    return sample


def _merge(samples: list[Sample]) -> Sample:
    merged = Sample()
    for s in samples:
        merged.latencies += s.latencies
        merged.wall += s.wall
        merged.errors += s.errors
    return merged


def _measure(
    run: Callable[[str], Sample], rounds: int, contacts: ContactsApi
) -> tuple[dict[str, Sample], int]:
    """Each path's samples, the paths alternating in every round; and the upstream
    connections the broker opened during the proxied runs."""
    samples: dict[str, list[Sample]] = {path: [] for path in PATHS}
    broker_connections = 0
    for _ in range(rounds):
        for path in PATHS:
            before = contacts.connections
            samples[path].append(run(path))
            if path == "proxied":
                broker_connections += contacts.connections - before
    return {path: _merge(s) for path, s in samples.items()}, broker_connections


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=2000, help="per path, client count, round")
    parser.add_argument("--clients", default="1,4", help="client thread counts, comma separated")
    parser.add_argument("--rounds", type=int, default=2)
    args = smoke_args(parser, requests=5, clients="1", rounds=1)
    client_counts = [int(c) for c in args.clients.split(",")]
    command = "PYTHONPATH=tests " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    print(f"## Proxy overhead — {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC\n")
    print(f"- command: `{command}`")
    print(f"- machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
          f"{_cpu_model()}, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}")  # fmt: skip
    print(f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        "- broker: `jobtoken broker serve`, 1 worker, SQLite, info-level request log, a token "
        "lookup per call; upstream: support.contacts_api (Python ThreadingHTTPServer, "
        "HTTP/1.1 keep-alive); clients: a requests.Session per thread, trust_env off\n"
    )
    with (
        FakeOidcIssuer() as issuer,
        ContactsApi() as contacts,
        tempfile.TemporaryDirectory() as tmp,
        running_broker(Path(tmp), issuer, contacts) as broker,
    ):
        token = _broker_token(broker.url, broker.id_token())
        contacts_json = b'{"contacts"'
        paths = {
            "direct": (
                f"{contacts.url}/v1/contacts",
                {"Authorization": f"Bearer {contacts.api_key}"},
                contacts_json,
            ),
            "proxied": (
                f"{broker.url}/proxy/contacts/v1/contacts",
                {"Authorization": f"Bearer {token}"},
                contacts_json,
            ),
            "broker /healthz": (f"{broker.url}/healthz", {}, b'{"status":"ok"'),
        }
        for url, headers, expected in paths.values():
            _load(url, headers, expected, min(WARM_UP, args.requests), 1)
        rows, summary = [], []
        for clients in client_counts:
            run = lambda path, c=clients: _load(*paths[path], args.requests, c)  # noqa: E731
            samples, opened = _measure(run, args.rounds, contacts)
            for name, s in samples.items():
                rows.append(
                    f"| {name} | {clients} | {len(s.latencies)} | {s.errors} | {s.rate:,.0f} "
                    f"| {s.p(0.5):.2f} | {s.p(0.99):.2f} |"
                )
            direct, proxied = samples["direct"], samples["proxied"]
            added = proxied.p(0.5) - direct.p(0.5)
            ratio = proxied.rate / direct.rate
            added_ok = "met" if added <= TARGET_ADDED_P50_MS else "MISSED"
            ratio_ok = "met" if ratio >= TARGET_THROUGHPUT_RATIO else "MISSED"
            summary.append(f"| {clients} | {added:.2f} ({added_ok}) | {ratio:.0%} ({ratio_ok}) "
                           f"| {opened} |")  # fmt: skip
    print("| path | clients | requests | errors | req/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(
        f"\n| clients | p50 added ms (target ≤ {TARGET_ADDED_P50_MS:g}) "
        f"| proxied/direct req/s (target ≥ {TARGET_THROUGHPUT_RATIO:.0%}) "
        "| upstream connections the broker opened |"
    )
    print("|---:|---:|---:|---:|")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
