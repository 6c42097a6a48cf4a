"""A connector's credential, from the store or from its sealed file: the opening is
audited (SHA-256 of the file, never the credential), done once per file content, and
every refusal names the file and what to do."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import pytest
from nacl.public import PrivateKey

from jobtoken.broker.audit.chain import AuditLog
from jobtoken.broker.connectors.credentials import ConnectorCredentials, CredentialUnusable
from jobtoken.broker.connectors.model import Connector
from jobtoken.broker.secrets.envelope import Envelope, MasterKey
from jobtoken.broker.secrets.sealed_file import seal_credential
from jobtoken.broker.store import SqlStore

SECRET = b"sk_live_SEALED_0123456789"


@pytest.fixture
def credentials(store: SqlStore) -> ConnectorCredentials:
    return ConnectorCredentials(store, Envelope(MasterKey.generate()), AuditLog(store))


def _records(store: SqlStore) -> list[dict[str, object]]:
    return [json.loads(row.record) for row in store.audit_rows()]


def _sealed_connector(
    credentials: ConnectorCredentials, path: Path, secret: bytes = SECRET
) -> Connector:
    _, public = credentials.seal_keys.ensure_current()
    path.write_text(seal_credential(secret, public))
    return Connector(name="api", credential_sealed_file=path)


def test_a_stored_credential_comes_from_the_store(store: SqlStore) -> None:
    envelope = Envelope(MasterKey.generate())
    store.put_credential("api", envelope.encrypt("connector:api", b"stored"), 1)
    credentials = ConnectorCredentials(store, envelope, AuditLog(store))
    assert credentials.get(Connector(name="api")) == b"stored"


def test_no_stored_credential_is_missing_and_says_both_ways_to_set_one(
    credentials: ConnectorCredentials,
) -> None:
    with pytest.raises(CredentialUnusable) as refused:
        credentials.get(Connector(name="api"))
    assert refused.value.reason == "credential_missing"
    assert "connector set api" in refused.value.text
    assert "credential_sealed_file" in refused.value.text


def test_a_sealed_file_is_opened_audited_with_its_sha256_and_never_the_secret(
    credentials: ConnectorCredentials, store: SqlStore, tmp_path: Path
) -> None:
    connector = _sealed_connector(credentials, tmp_path / "api.sealed")
    assert credentials.get(connector) == SECRET
    (record,) = _records(store)
    assert record["decision"] == "credential_opened"
    assert record["connector"] == "api"
    assert record["file"] == str(tmp_path / "api.sealed")
    digest = hashlib.sha256((tmp_path / "api.sealed").read_bytes()).hexdigest()
    assert record["file_sha256"] == digest
    assert SECRET.decode() not in json.dumps(record)


def test_a_sealed_file_is_opened_once_until_its_content_changes(
    credentials: ConnectorCredentials, store: SqlStore, tmp_path: Path
) -> None:
    connector = _sealed_connector(credentials, tmp_path / "api.sealed")
    for _ in range(3):
        assert credentials.get(connector) == SECRET
    assert len(_records(store)) == 1
    _sealed_connector(credentials, tmp_path / "api.sealed", b"sk_live_ROTATED")
    assert credentials.get(connector) == b"sk_live_ROTATED"
    assert [r["decision"] for r in _records(store)] == ["credential_opened"] * 2


def test_a_sealed_file_wins_over_a_stored_credential(store: SqlStore, tmp_path: Path) -> None:
    envelope = Envelope(MasterKey.generate())
    store.put_credential("api", envelope.encrypt("connector:api", b"stored"), 1)
    credentials = ConnectorCredentials(store, envelope, AuditLog(store))
    assert credentials.get(_sealed_connector(credentials, tmp_path / "f")) == SECRET


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("other_broker", "another broker"),
        ("truncated", "altered or truncated"),
        ("altered", "altered or truncated"),
        ("missing", "cannot read the sealed credential file"),
        ("plaintext", "not a jobtoken sealed credential file"),
    ],
)
def test_a_file_that_does_not_open_is_refused_naming_it_and_is_not_audited(
    credentials: ConnectorCredentials,
    store: SqlStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: str,
    match: str,
) -> None:
    path = tmp_path / "api.sealed"
    connector = _sealed_connector(credentials, path)
    text = path.read_text()
    if damage == "other_broker":
        path.write_text(seal_credential(SECRET, bytes(PrivateKey.generate().public_key)))
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "altered":
        body = text.splitlines()
        body[1] = ("B" if body[1][0] == "A" else "A") + body[1][1:]
        path.write_text("\n".join(body) + "\n")
    elif damage == "missing":
        path.unlink()
    else:
        path.write_bytes(SECRET)
    with caplog.at_level(logging.ERROR, logger="jobtoken"):
        for _ in range(3):
            with pytest.raises(CredentialUnusable) as refused:
                credentials.get(connector)
    assert refused.value.reason == "credential_unreadable"
    assert re.search(match, refused.value.text)  # the operators' text says what is wrong
    # the job is told only whom to ask, never the file
    assert refused.value.description == "connector api is unavailable; ask the broker operators"
    assert str(path) in refused.value.text
    assert refused.value.text.startswith("connector api:")
    assert _records(store) == []
    logged = [r for r in caplog.records if r.getMessage() == "sealed credential file refused"]
    assert len(logged) == 1  # once, not per request
    assert SECRET.decode() not in caplog.text + refused.value.text


def test_check_opens_a_file_without_auditing_or_keeping_it(
    credentials: ConnectorCredentials, store: SqlStore, tmp_path: Path
) -> None:
    connector = _sealed_connector(credentials, tmp_path / "api.sealed")
    credentials.require_usable(connector)
    assert _records(store) == []
    credentials.get(connector)
    assert len(_records(store)) == 1  # check kept nothing: the use opens (and audits)


def test_threads_asking_at_once_open_and_audit_a_new_file_once(
    credentials: ConnectorCredentials, store: SqlStore, tmp_path: Path
) -> None:
    import threading

    connector = _sealed_connector(credentials, tmp_path / "api.sealed")
    barrier = threading.Barrier(8)
    got: list[bytes] = []

    def use() -> None:
        barrier.wait()
        got.append(credentials.get(connector))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == [SECRET] * 8
    assert len(_records(store)) == 1
