"""Two real broker processes (``jobtoken broker serve --workers 2``) on one PostgreSQL
database, as brokers behind one load balancer run: one public URL, one master key, one
store. An ID token is accepted once across them, a revocation on one holds on the other
at once, the audit chain stays one verifiable chain under concurrent writers, and a
signing-key rotation by the CLI reaches every worker within the refresh interval."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests

from support.broker_process import REPO, REPO_ID, BrokerProcess
from support.contacts_api import ContactsApi
from support.oidc_issuer import FakeOidcIssuer

WORKERS = 2
KEY_REFRESH_SECONDS = 2  # [keys] signing_key_refresh_seconds (the default is 10)
REFRESH_MARGIN_SECONDS = 1.0
#: requests per check that should reach every worker of a process (fresh connections)
TRIES_PER_PROCESS = 4

Brokers = tuple[BrokerProcess, BrokerProcess]


@pytest.fixture
def brokers(tmp_path: Path, postgres_database: str) -> Iterator[Brokers]:
    """Two broker processes of two workers each, sharing the database and public URL."""
    with FakeOidcIssuer() as issuer, ContactsApi() as contacts:
        issuer.claims.update(repository=REPO, repository_id=REPO_ID)
        first = BrokerProcess(
            tmp_path / "a", issuer, contacts, store_dsn=postgres_database, workers=WORKERS,
            key_refresh_seconds=KEY_REFRESH_SECONDS,
        )  # fmt: skip
        first.public_url = first.url
        second = BrokerProcess(
            tmp_path / "b", issuer, contacts, store_dsn=postgres_database, workers=WORKERS,
            key_refresh_seconds=KEY_REFRESH_SECONDS, public_url=first.url,
            master_key=first.master_key, client_secret=first.client_secret,
            webhook_secret=first.webhook_secret,
            passthrough_credential=first.passthrough_credential,
        )  # fmt: skip
        try:
            for broker in (first, second):
                broker.workdir.mkdir()
                broker.write_files()
            # One store: the first process's CLI stores the credential and the first
            # signing key (so that the processes, started together, race to create nothing).
            with ThreadPoolExecutor(2) as pool:
                setup = [
                    pool.submit(
                        first.cli, "connector", "set", "contacts", "--config",
                        str(first.config_path), "--credential-file", "-",
                        stdin=contacts.api_key.encode(),
                    ),
                    pool.submit(
                        first.cli, "rotate-signing-key", "--config", str(first.config_path)
                    ),
                ]  # fmt: skip
                for done in (f.result() for f in setup):
                    assert done.returncode == 0, done.stderr.decode()
            for broker in (first, second):
                broker.spawn()
            for broker in (first, second):
                broker.wait_started()
            yield first, second
        finally:
            for broker in (first, second):
                if broker.process is not None:
                    broker.process.terminate()  # both shut down together
            for broker in (first, second):
                broker.stop()


def proxied(broker: BrokerProcess, access_token: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}"}
    return requests.get(f"{broker.url}/proxy/contacts/v1/contacts", headers=headers, timeout=10)


def jwks_kids(broker: BrokerProcess) -> list[str]:
    response = requests.get(f"{broker.url}/.well-known/jwks.json", timeout=10)
    assert response.status_code == 200
    return [key["kid"] for key in response.json()["keys"]]


def header_kid(jwt_text: str) -> str:
    """The ``kid`` of a JWT's header, read without verifying anything."""
    segment = jwt_text.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    kid: str = header["kid"]
    return kid


def minted(broker: BrokerProcess, **claims: str) -> str:
    response = broker.exchange(subject_token=broker.id_token(**claims))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def query(dsn: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(statement).fetchall()


def audit_records(dsn: str) -> list[tuple[int, dict[str, object]]]:
    rows = query(dsn, "SELECT seq, record FROM audit ORDER BY seq")
    return [(int(str(seq)), json.loads(str(record))) for seq, record in rows]


ROUNDS = 200


def test_one_id_token_sent_to_both_processes_at_once_is_accepted_exactly_once(
    brokers: Brokers, postgres_database: str
) -> None:
    first = brokers[0]
    check_runs = [str(800_000 + i) for i in range(ROUNDS)]
    tokens = [first.id_token(check_run_id=c) for c in check_runs]
    barrier = threading.Barrier(2)

    def send(broker: BrokerProcess) -> list[requests.Response]:
        out = []
        try:
            for token in tokens:
                barrier.wait(timeout=30)  # both requests of a round leave together
                out.append(broker.exchange(subject_token=token))
        except BaseException:
            barrier.abort()
            raise
        return out

    with ThreadPoolExecutor(2) as pool:
        on_first, on_second = (f.result() for f in [pool.submit(send, b) for b in brokers])

    wrong = []
    wins: Counter[str] = Counter()
    for i, pair in enumerate(zip(on_first, on_second, strict=True)):
        outcome = sorted((r.status_code, r.json().get("error", "")) for r in pair)
        if outcome != [(200, ""), (400, "invalid_grant")]:
            wrong.append((i, outcome))
        wins["first" if pair[0].status_code == 200 else "second"] += 1
    assert wrong == [], f"{len(wrong)} of {ROUNDS} tokens not accepted exactly once: {wrong[:5]}"
    assert sum(wins.values()) == ROUNDS
    rows = query(
        postgres_database, "SELECT check_run_id, count(*) FROM tokens GROUP BY check_run_id"
    )
    assert {str(c): n for c, n in rows} == dict.fromkeys(check_runs, 1)
    decisions = Counter((r["decision"], r["reason"]) for _, r in audit_records(postgres_database))
    assert decisions == {("issued", "policy_allowed"): ROUNDS, ("denied", "replayed"): ROUNDS}


def _revoked_on_one_is_refused_on_the_other(issuer: BrokerProcess, revoker: BrokerProcess) -> None:
    token = minted(issuer)
    assert revoker.introspect(token).json()["active"] is True  # the other process sees it
    assert proxied(revoker, token).status_code == 200
    revoked = requests.post(f"{revoker.url}/revoke", data={"token": token}, timeout=10)
    assert revoked.status_code == 200
    for _ in range(TRIES_PER_PROCESS):  # fresh connections: every worker of the process
        answer = issuer.introspect(token)
        assert answer.status_code == 200
        assert answer.json() == {"active": False}
        refused = proxied(issuer, token)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_token"


def test_a_revocation_on_one_process_is_refused_on_the_other_at_once(brokers: Brokers) -> None:
    first, second = brokers
    _revoked_on_one_is_refused_on_the_other(first, second)
    _revoked_on_one_is_refused_on_the_other(second, first)


THREADS_PER_PROCESS = 2
REQUESTS_PER_THREAD = 30


def test_the_audit_chain_stays_verifiable_under_concurrent_writers(
    brokers: Brokers, postgres_database: str
) -> None:
    """Each thread sends, in turn: a fresh token, the same token again (a replay), and
    every fifth request a scope the policy does not allow."""

    def drive(broker: BrokerProcess, thread: int) -> Counter[tuple[int, str]]:
        seen: Counter[tuple[int, str]] = Counter()
        token = ""
        for i in range(REQUESTS_PER_THREAD):
            if i % 5 == 4:
                response, expected = broker.exchange("contacts.write"), 400
            elif i % 5 == 3:
                response, expected = broker.exchange(subject_token=token), 400
            else:
                token = broker.id_token(check_run_id=f"{thread}{i:03d}")
                response, expected = broker.exchange(subject_token=token), 200
            assert response.status_code == expected, response.text
            seen[response.status_code, response.json().get("error", "")] += 1
        return seen

    with ThreadPoolExecutor(len(brokers) * THREADS_PER_PROCESS) as pool:
        futures = [
            pool.submit(drive, broker, 10 * b + t)
            for b, broker in enumerate(brokers, start=1)
            for t in range(THREADS_PER_PROCESS)
        ]
        outcomes = sum((f.result() for f in futures), Counter[tuple[int, str]]())

    threads = len(brokers) * THREADS_PER_PROCESS
    per_thread = REQUESTS_PER_THREAD // 5
    assert outcomes == {
        (200, ""): threads * per_thread * 3,
        (400, "invalid_grant"): threads * per_thread,
        (400, "invalid_scope"): threads * per_thread,
    }
    issued = outcomes[200, ""]
    denied = outcomes.total() - issued
    for broker in brokers:  # either config names the same database
        done = broker.cli("audit", "verify", "--config", str(broker.config_path))
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().startswith(f"audit chain intact: {issued + denied} record(s)")
    records = audit_records(postgres_database)
    assert [seq for seq, _ in records] == list(range(1, issued + denied + 1))
    assert Counter(r["decision"] for _, r in records) == {"issued": issued, "denied": denied}
    assert query(postgres_database, "SELECT seq FROM audit_head") == [(issued + denied,)]


def test_a_signing_key_rotation_reaches_every_process_within_the_refresh_interval(
    brokers: Brokers,
) -> None:
    first, second = brokers
    before = {header_kid(minted(b)) for b in brokers for _ in range(TRIES_PER_PROCESS)}
    assert len(before) == 1
    (old_kid,) = before
    old_token = minted(first)
    for broker in brokers:
        assert jwks_kids(broker) == [old_kid]

    done = first.cli("rotate-signing-key", "--config", str(first.config_path))
    assert done.returncode == 0, done.stderr.decode()
    found = re.search(r"new signing key (\S+) is current", done.stdout.decode())
    assert found is not None, done.stdout.decode()
    new_kid = found.group(1)
    assert new_kid != old_kid
    time.sleep(KEY_REFRESH_SECONDS + REFRESH_MARGIN_SECONDS)

    for broker in brokers:
        for _ in range(TRIES_PER_PROCESS):  # fresh connections: every worker of the process
            assert jwks_kids(broker) == [new_kid, old_kid]  # the previous key stays listed
            assert header_kid(minted(broker)) == new_kid
    new_token = minted(second)
    for broker in brokers:  # each process verifies the other's token, old key and new
        assert broker.introspect(new_token).json()["active"] is True
        assert broker.introspect(old_token).json()["active"] is True
