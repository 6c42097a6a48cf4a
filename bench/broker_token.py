"""Throughput and latency of the real broker's POST /token (and /introspect).

Starts a fake OIDC issuer and `jobtoken broker serve` (SQLite, one worker) on
loopback, pre-mints ID tokens, then exchanges them one after another and from
4 client threads, and prints requests/s and latency percentiles.

    .venv/bin/python bench/broker_token.py [--requests 1000] [--workers 1]
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from smoke import smoke_args

from support.oidc_issuer import FakeOidcIssuer

REPO, REPO_ID = "octo-org/octo-repo", "690001234"
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(workdir: Path, issuer_url: str, port: int) -> Path:
    (workdir / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    (workdir / "client.secret").write_text("bench-secret")
    policies = workdir / "policies" / "octo-org"
    policies.mkdir(parents=True)
    (policies / "octo-repo.yml").write_text(
        f'version: 1\nrepository: {REPO}\nrepository_id: "{REPO_ID}"\n'
        "connectors:\n  contacts:\n    - scopes: [contacts.read]\n      max_ttl: 10m\n"
    )
    config = workdir / "broker.toml"
    config.write_text(
        f'[server]\nport = {port}\npublic_url = "http://127.0.0.1:{port}"\nlog_level = "warning"\n'
        f'[store]\npath = "b.db"\n[keys]\nmaster_key_file = "master.key"\n'
        f'[oidc]\nissuers = []\nloopback_test_issuers = ["{issuer_url}"]\n'
        '[[introspection_clients]]\nid = "rs"\nsecret_file = "client.secret"\n'
        '[policy]\ndirectory = "policies"\n[connectors.contacts]\nscopes = ["contacts.read"]\n'
        "[limits]\nrepository_rate = 0\n"  # one repository, 1,000s of exchanges: not the limiter
    )
    return config


def _exchange(session: requests.Session, url: str, id_token: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = session.post(
        f"{url}/token",
        data={
            "grant_type": GRANT,
            "subject_token": id_token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "resource": "contacts",
            "scope": "contacts.read",
        },
        timeout=30,
    )
    response.raise_for_status()
    return time.perf_counter() - started, response.json()["access_token"]


def _report(label: str, latencies: list[float], wall: float) -> None:
    ms = sorted(x * 1000 for x in latencies)
    print(
        f"{label:<34} {len(ms) / wall:8.0f} req/s   p50 {statistics.median(ms):6.2f} ms   "
        f"p99 {ms[int(len(ms) * 0.99) - 1]:6.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    args = smoke_args(parser, requests=5)
    with FakeOidcIssuer() as issuer, tempfile.TemporaryDirectory() as tmp:
        issuer.claims.update(repository=REPO, repository_id=REPO_ID)
        port = _port()
        url = f"http://127.0.0.1:{port}"
        config = _setup(Path(tmp), issuer.url, port)
        broker = subprocess.Popen(
            [sys.executable, "-m", "jobtoken.cli", "broker", "serve", "--config", str(config),
             "--workers", str(args.workers)],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(200):
                try:
                    if requests.get(f"{url}/healthz", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(0.05)
            print(f"{'call':<34} {'rate':>14}   {'p50':>12}   {'p99':>12}")
            tokens = [issuer.mint(audience=url) for _ in range(args.requests * 2 + 20)]
            session = requests.Session()
            for token in tokens[:20]:  # warm-up: JWKS fetch, connections
                _exchange(session, url, token)
            tokens = tokens[20:]
            sequential = tokens[: args.requests]
            started = time.perf_counter()
            results = [_exchange(session, url, t) for t in sequential]
            _report("POST /token, 1 client", [r[0] for r in results], time.perf_counter() - started)

            parallel = tokens[args.requests :]
            sessions = [requests.Session() for _ in range(4)]
            started = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                timed = list(
                    pool.map(
                        lambda it: _exchange(sessions[it[0] % 4], url, it[1]), enumerate(parallel)
                    )
                )
            _report("POST /token, 4 clients", [r[0] for r in timed], time.perf_counter() - started)

            latencies = []
            started = time.perf_counter()
            for _, access_token in results[:500]:
                t0 = time.perf_counter()
                answer = session.post(
                    f"{url}/introspect",
                    data={"token": access_token},
                    auth=("rs", "bench-secret"),
                    timeout=30,
                )
                answer.raise_for_status()
                latencies.append(time.perf_counter() - t0)
            _report("POST /introspect, 1 client", latencies, time.perf_counter() - started)

            started = time.perf_counter()
            verify = subprocess.run(
                [sys.executable, "-m", "jobtoken.cli", "broker", "audit", "verify", "--config",
                 str(config)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            elapsed = time.perf_counter() - started
            print(f"audit verify: {verify.stdout.split(',')[0]} in {elapsed:.2f} s (with startup)")
        finally:
            broker.terminate()
            broker.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
