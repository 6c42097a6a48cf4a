from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from jobtoken.broker.audit.chain import AuditLog
from jobtoken.broker.errors import BrokerError
from jobtoken.broker.ops.metrics import Metrics
from jobtoken.broker.store import JobKey, SqlStore, TokenRecord, open_store
from jobtoken.broker.tokens.exchange import token_sha256
from jobtoken.broker.tokens.registry import TokenRegistry


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return open_store("sqlite", path=tmp_path / "r.db")


def _issue(
    store: SqlStore,
    token: str,
    *,
    expires_in: int = 600,
    check_run_id: str = "4",
    shared_credential: bool = False,
) -> None:
    now = int(time.time())
    record = TokenRecord(
        token_id=f"id-{token}-{check_run_id}" if shared_credential else "id-" + token,
        token_sha256=token_sha256(token),
        kind="passthrough" if shared_credential else "minted",
        connector="contacts",
        scopes="contacts.read",
        subject="repo:o/r:ref:refs/heads/main",
        repository_id="1",
        run_id="2",
        run_attempt="3",
        check_run_id=check_run_id,
        issued_at=now - 10,
        expires_at=now + expires_in,
        shared_credential=shared_credential,
    )
    store.issue_token(lambda seq, prev: ("{}", f"{seq:064x}"), record)


def _registry(store: SqlStore) -> TokenRegistry:
    return TokenRegistry(store, AuditLog(store), Metrics(), issuer="https://broker.test")


def test_an_active_token_introspects_with_its_binding(store: SqlStore) -> None:
    _issue(store, "tok")
    body = _registry(store).introspect("tok", client_id="rs")
    assert body["active"] is True
    assert body["aud"] == "contacts"
    assert body["iss"] == "https://broker.test"
    assert body["jti"] == "id-tok"
    assert (body["repository_id"], body["run_id"], body["run_attempt"], body["check_run_id"]) == (
        "1",
        "2",
        "3",
        "4",
    )


@pytest.mark.parametrize("case", ["unknown", "expired", "revoked", "oversized"])
def test_inactive_is_exactly_active_false(store: SqlStore, case: str) -> None:
    registry = _registry(store)
    token = "tok"
    if case == "expired":
        _issue(store, token, expires_in=-1)
    elif case == "revoked":
        _issue(store, token)
        registry.revoke(token)
    elif case == "oversized":
        token = "x" * (16 * 1024 + 1)
    assert registry.introspect(token, client_id="rs") == {"active": False}


def test_revoke_is_audited_by_hash_and_idempotent(store: SqlStore) -> None:
    _issue(store, "tok")
    registry = _registry(store)
    registry.revoke("tok", client_address="127.0.0.1")
    registry.revoke("tok")
    records = [json.loads(r.record) for r in store.audit_rows()][1:]
    assert [(r["decision"], r["reason"]) for r in records] == [
        ("revoked", "revoke_endpoint"),
        ("revoked", "unknown_or_already_revoked"),
    ]
    assert records[0]["token_sha256"] == token_sha256("tok")


def test_a_completed_job_revokes_only_its_own_tokens(store: SqlStore) -> None:
    _issue(store, "mine", check_run_id="4")
    _issue(store, "sibling-job", check_run_id="5")
    registry = _registry(store)
    assert (
        registry.revoke_job(repository_id="1", run_id="2", run_attempt="3", check_run_id="4") == 1
    )
    assert registry.introspect("mine", client_id="rs") == {"active": False}
    assert registry.introspect("sibling-job", client_id="rs")["active"] is True


def test_introspection_is_audited_with_the_client(store: SqlStore) -> None:
    _issue(store, "tok")
    _registry(store).introspect("tok", client_id="resource-server", client_address="10.1.2.3")
    record = json.loads(list(store.audit_rows())[-1].record)
    assert (record["decision"], record["reason"], record["client_id"]) == (
        "introspected",
        "active",
        "resource-server",
    )
    assert record["client_address"] == "10.1.2.3"


def test_revoke_by_id_needs_the_same_job(store: SqlStore) -> None:
    _issue(store, "tok")
    registry = _registry(store)
    registry.revoke_own("id-tok", job=JobKey("1", "2", "9", "4"), claims={})
    assert registry.introspect("tok", client_id="rs")["active"] is True
    registry.revoke_own("id-tok", job=JobKey("1", "2", "3", "4"), claims={})
    assert registry.introspect("tok", client_id="rs") == {"active": False}
    reasons = [json.loads(r.record).get("reason") for r in store.audit_rows()]
    assert "revoke_by_id" in reasons
    assert "unknown_or_already_revoked" in reasons


@pytest.mark.parametrize("other_job", ["5", ""])
def test_a_sibling_job_of_the_same_run_cannot_revoke_by_id(store: SqlStore, other_job: str) -> None:
    _issue(store, "tok", check_run_id="4")
    registry = _registry(store)
    registry.revoke_own("id-tok", job=JobKey("1", "2", "3", other_job), claims={})
    assert registry.introspect("tok", client_id="rs")["active"] is True


def test_a_refused_revocation_is_audited(store: SqlStore) -> None:
    _registry(store).refuse("bad_signature", token_id="id-tok", client_address="10.0.0.9")
    record = json.loads(list(store.audit_rows())[-1].record)
    assert (record["decision"], record["reason"], record["token_id"]) == (
        "denied",
        "bad_signature",
        "id-tok",
    )


def test_every_revocation_and_introspection_record_holds_its_request_id(store: SqlStore) -> None:
    for token in ("a", "b", "c"):
        _issue(store, token, check_run_id="4")
    registry = _registry(store)
    registry.introspect("a", client_id="rs", request_id="r-introspect")
    registry.revoke("a", request_id="r-revoke")
    registry.revoke("a", request_id="r-revoke-again")  # already revoked
    job = {"repository_id": "1", "run_id": "2", "run_attempt": "3", "check_run_id": "4"}
    registry.revoke_own("id-b", job=JobKey(**job), claims={}, request_id="r-by-id")
    registry.revoke_own("id-zz", job=JobKey(**job), claims={}, request_id="r-by-unknown-id")
    registry.revoke_job(**job, request_id="r-webhook")
    registry.refuse("missing_token", request_id="r-refused")
    records = [json.loads(r.record) for r in store.audit_rows()][3:]  # after the issues
    assert [(r["decision"], r["reason"], r["request_id"]) for r in records] == [
        ("introspected", "active", "r-introspect"),
        ("revoked", "revoke_endpoint", "r-revoke"),
        ("revoked", "unknown_or_already_revoked", "r-revoke-again"),
        ("revoked", "revoke_by_id", "r-by-id"),
        ("revoked", "unknown_or_already_revoked", "r-by-unknown-id"),
        ("revoked", "job_completed", "r-webhook"),
        ("denied", "missing_token", "r-refused"),
    ]


def test_a_token_sent_with_a_jobs_proof_is_revoked_only_for_that_job(store: SqlStore) -> None:
    _issue(store, "tok", check_run_id="4")
    registry = _registry(store)
    registry.revoke("tok", job=JobKey("1", "2", "3", "5"))  # a sibling job's ID token
    assert registry.introspect("tok", client_id="rs")["active"] is True
    registry.revoke("tok", job=JobKey("1", "2", "3", "4"))
    assert registry.introspect("tok", client_id="rs") == {"active": False}
    reasons = [json.loads(r.record).get("reason") for r in store.audit_rows()]
    assert reasons[-4:] == [
        "unknown_or_already_revoked",  # the sibling's proof: nothing of its own
        "active",
        "revoke_endpoint_for_job",
        "inactive",
    ]


def test_possession_alone_revokes_no_lease_of_a_shared_credential(store: SqlStore) -> None:
    for job in ("4", "5"):
        _issue(store, "static-key", check_run_id=job, shared_credential=True)
    registry = _registry(store)
    with pytest.raises(BrokerError) as refused:
        registry.revoke("static-key", request_id="r-1")
    assert (refused.value.error, refused.value.reason) == (
        "unsupported_token_type",
        "shared_credential",
    )
    assert registry.introspect("static-key", client_id="rs")["active_leases"] == 2
    denied = json.loads(list(store.audit_rows())[-2].record)
    assert (denied["decision"], denied["reason"], denied["token_sha256"]) == (
        "denied",
        "shared_credential",
        token_sha256("static-key"),
    )
    registry.revoke("static-key", job=JobKey("1", "2", "3", "5"))
    left = registry.introspect("static-key", client_id="rs")
    assert (left["active_leases"], left["jti"]) == (1, "id-static-key-4")


def test_a_shared_credential_introspects_as_what_its_leases_agree_on(store: SqlStore) -> None:
    for job, lifetime in (("4", 600), ("5", 900)):
        _issue(store, "static-key", check_run_id=job, shared_credential=True, expires_in=lifetime)
    body = _registry(store).introspect("static-key", client_id="rs")
    assert body["active_leases"] == 2
    leases = store.find_tokens(token_sha256("static-key"))
    assert body["exp"] == max(r.expires_at for r in leases)  # the span they cover
    assert body["iat"] == body["nbf"] == min(r.issued_at for r in leases)
    assert (body["aud"], body["token_kind"], body["run_id"]) == ("contacts", "passthrough", "2")
    assert "jti" not in body
    assert "check_run_id" not in body
    record = json.loads(list(store.audit_rows())[-1].record)
    assert (record["reason"], record["token_id"]) == ("active_shared_credential", "")
