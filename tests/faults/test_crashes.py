"""Crashes of real broker processes (SIGKILL of the server and every worker at once,
as a power cut) never lose a record: every token a client received has its row and
its audit record, every revocation answered before the crash holds after it, a job
whose webhook was cut short is finished by GitHub's redelivery, and ``audit verify``
run while brokers write never reports tampering. The kill under load runs on SQLite
with one and two workers and on PostgreSQL with two; the others on SQLite with two.
Loopback, bounded in requests and seconds."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from jobtoken.broker.audit.chain import AuditEntry, AuditLog, check_chain
from jobtoken.broker.store import SqlStore, TokenRecord, open_store
from support.broker_process import REPO, REPO_ID, BrokerProcess, serving_broker
from support.stores import fresh_schema_dsn

CLIENTS = 4
LOAD_SECONDS = 2.0
JOB = {"run_id": "7001", "run_attempt": "1", "check_run_id": "9001"}
JOB_TOKENS = 1600  # four revocation transactions of at most 500


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with serving_broker(tmp_path, workers=2) as process:
        yield process


@pytest.fixture(params=[("sqlite", 1), ("sqlite", 2), ("postgres", 2)], ids=str)
def any_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrokerProcess]:
    kind, workers = request.param
    dsn = fresh_schema_dsn(request.getfixturevalue("postgres_dsn")) if kind == "postgres" else None
    with serving_broker(tmp_path, workers=workers, store_dsn=dsn) as process:
        yield process


def _load(broker: BrokerProcess, stop: threading.Event, received: list[str]) -> None:
    """Exchange fresh ID tokens until ``stop``; keep every token that was answered."""
    session = requests.Session()
    while not stop.is_set():
        try:
            response = session.post(
                f"{broker.url}/token",
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                    "subject_token": broker.id_token(),
                    "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                    "resource": "contacts",
                    "scope": "contacts.read",
                },
                timeout=10,
            )
        except requests.RequestException:
            continue  # the broker is gone: this request got no token
        if response.status_code == 200:
            received.append(response.json()["access_token"])


def _issued_records(broker: BrokerProcess) -> tuple[set[str], Counter[str], int]:
    """(sha256 of issued tokens, revocation records per sha256, problems in the chain)."""
    store = _store(broker)
    try:
        issued: set[str] = set()
        revoked: Counter[str] = Counter()
        for row in store.audit_rows():
            record = json.loads(row.record)
            if record["decision"] == "issued":
                issued.add(record["token_sha256"])
            elif record["decision"] == "revoked" and record["token_id"]:
                revoked[record["token_sha256"]] += 1
        problems = len(check_chain(store.audit_rows(), store.audit_head()))
    finally:
        store.close()
    return issued, revoked, problems


def _store(broker: BrokerProcess) -> SqlStore:
    if broker.store_dsn is not None:
        return open_store("postgres", dsn=broker.store_dsn)
    return open_store("sqlite", path=broker.db_path)


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_a_kill_during_load_loses_no_record_and_no_revocation(any_broker: BrokerProcess) -> None:
    broker = any_broker
    received: list[str] = []
    stop = threading.Event()
    clients = [
        threading.Thread(target=_load, args=(broker, stop, received)) for _ in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    time.sleep(LOAD_SECONDS)
    revoked_before = list(received[:50])
    for token in revoked_before:  # answered 200 before the crash: must hold after it
        assert requests.post(f"{broker.url}/revoke", data={"token": token}, timeout=10).ok
    time.sleep(0.3)
    broker.kill()  # mid-load: requests are in flight
    stop.set()
    for client in clients:
        client.join(30)
    assert len(received) > 100, "the load did not run"

    issued, revoked, problems = _issued_records(broker)
    assert problems == 0
    missing = [t for t in received if _sha(t) not in issued]
    assert missing == [], f"{len(missing)} tokens were received without an audit record"
    assert all(revoked[_sha(t)] == 1 for t in revoked_before)

    broker.start()
    for token in revoked_before:
        assert broker.introspect(token).json() == {"active": False}
    for token in received[-20:]:
        if token not in revoked_before:
            assert broker.introspect(token).json()["active"] is True


def _webhook(broker: BrokerProcess, delivery: str) -> requests.Response:
    return broker.job_completed(**JOB, delivery=delivery, timeout=60)


def _job_tokens(broker: BrokerProcess, count: int) -> list[str]:
    """``count`` tokens of JOB, written the way the exchange writes them (a row and an
    ``issued`` record each, in the store's issuing transaction) but without minting."""
    store = open_store("sqlite", path=broker.db_path)
    now = int(time.time())
    tokens = [secrets.token_urlsafe(24) for _ in range(count)]
    audit = AuditLog(store)

    def issue(token: str) -> None:
        record = TokenRecord(
            token_id=secrets.token_urlsafe(12), token_sha256=_sha(token), kind="minted",
            connector="contacts", scopes="contacts.read", subject=f"repo:{REPO}",
            repository_id=REPO_ID, issued_at=now, expires_at=now + 600, **JOB,
        )  # fmt: skip
        entry = AuditEntry(
            decision="issued", token_sha256=record.token_sha256, token_id=record.token_id
        )
        store.issue_token(audit.builder(entry), record)

    try:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(issue, tokens))
    finally:
        store.close()
    return tokens


def _revoked_count(broker: BrokerProcess) -> int:
    with sqlite3.connect(f"file:{broker.db_path}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT COUNT(*) FROM tokens WHERE revoked_at IS NOT NULL").fetchone()
    return int(row[0])


def test_a_webhook_cut_short_by_a_crash_is_finished_by_the_redelivery(
    broker: BrokerProcess,
) -> None:
    tokens = _job_tokens(broker, JOB_TOKENS)
    delivery = secrets.token_hex(16)
    sender = threading.Thread(target=_safe_webhook, args=(broker, delivery))
    sender.start()
    deadline = time.monotonic() + 20
    while _revoked_count(broker) == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    broker.kill()  # one batch of the job's tokens is revoked, the rest not yet
    sender.join(30)

    store = open_store("sqlite", path=broker.db_path)
    try:
        states = [store.find_tokens(_sha(t))[0].revoked_at is not None for t in tokens]
    finally:
        store.close()
    _, revoked, problems = _issued_records(broker)
    assert problems == 0
    # every revoked token has its one revocation record: none revoked silently
    assert set(revoked) == {_sha(t) for t, done in zip(tokens, states, strict=True) if done}
    assert set(revoked.values()) <= {1}

    broker.start()
    redelivered = _webhook(broker, delivery)  # GitHub redelivers with the same id
    assert redelivered.status_code == 200, redelivered.text
    assert 0 < states.count(True) < JOB_TOKENS, "the crash did not fall between two batches"
    assert redelivered.json() == {"revoked": states.count(False)}
    for token in tokens[:: JOB_TOKENS // 10]:
        assert broker.introspect(token).json() == {"active": False}
    _, revoked, problems = _issued_records(broker)
    assert problems == 0
    assert revoked == Counter({_sha(t): 1 for t in tokens})  # each once, none missing
    assert _webhook(broker, delivery).json() == {"duplicate": True}


def _safe_webhook(broker: BrokerProcess, delivery: str) -> None:
    with contextlib.suppress(requests.RequestException):  # it dies mid-request, as intended
        _webhook(broker, delivery)


def test_audit_verify_while_brokers_write_reports_no_tampering(broker: BrokerProcess) -> None:
    received: list[str] = []
    stop = threading.Event()
    clients = [
        threading.Thread(target=_load, args=(broker, stop, received)) for _ in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    try:
        time.sleep(0.5)
        for _ in range(3):
            done = broker.cli("audit", "verify", "--config", str(broker.config_path))
            assert done.returncode == 0, done.stderr.decode()
            assert b"audit chain intact" in done.stdout
    finally:
        stop.set()
        for client in clients:
            client.join(30)
    assert len(received) > 20
