"""The real broker process (``jobtoken broker serve``) driven over loopback HTTP by
third-party clients: Authlib for RFC 8693 / 7009 / 7662, joserfc for the minted JWT."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import sqlite3

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from support.broker_process import REPO_ID, BrokerProcess

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"


def proxied(broker: BrokerProcess, access_token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    return requests.get(f"{broker.url}/proxy/contacts/v1/contacts", headers=headers, timeout=5)


def test_metadata_is_rfc8414(broker: BrokerProcess) -> None:
    body = requests.get(f"{broker.url}/.well-known/oauth-authorization-server", timeout=5).json()
    assert body["issuer"] == broker.url
    assert body["token_endpoint"] == f"{broker.url}/token"
    assert body["revocation_endpoint"] == f"{broker.url}/revoke"
    assert body["introspection_endpoint"] == f"{broker.url}/introspect"
    assert body["jwks_uri"] == f"{broker.url}/.well-known/jwks.json"
    assert body["grant_types_supported"] == [TOKEN_EXCHANGE]
    assert body["scopes_supported"] == ["contacts.read", "contacts.write"]


def test_authlib_exchanges_revokes_and_introspects(broker: BrokerProcess) -> None:
    client = OAuth2Session(client_id="job", token_endpoint_auth_method="none")
    token = client.fetch_token(
        f"{broker.url}/token",
        grant_type=TOKEN_EXCHANGE,
        subject_token=broker.id_token(),
        subject_token_type=ID_TOKEN_TYPE,
        resource="contacts",
        scope="contacts.read",
    )
    assert token["token_type"] == "Bearer"
    assert token["issued_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
    assert token["scope"] == "contacts.read"
    assert 0 < token["expires_in"] <= 600  # the policy's max_ttl (10m) caps the 900 s default

    resource_server = OAuth2Session(
        client_id="resource-server",
        client_secret=broker.client_secret,
        token_endpoint_auth_method="client_secret_basic",
    )
    active = resource_server.introspect_token(
        f"{broker.url}/introspect", token=token["access_token"]
    ).json()
    assert active["active"] is True
    assert active["scope"] == "contacts.read"
    assert active["aud"] == "contacts"
    assert active["repository_id"] == REPO_ID

    revoked = client.revoke_token(f"{broker.url}/revoke", token=token["access_token"])
    assert revoked.status_code == 200
    after = resource_server.introspect_token(
        f"{broker.url}/introspect", token=token["access_token"]
    )
    assert after.json() == {"active": False}


def test_joserfc_verifies_a_minted_token_through_the_jwks(broker: BrokerProcess) -> None:
    access_token = broker.exchange().json()["access_token"]
    jwks = requests.get(f"{broker.url}/.well-known/jwks.json", timeout=5).json()
    token = jose_jwt.decode(access_token, KeySet.import_key_set(jwks), algorithms=["ES256"])
    JWTClaimsRegistry(
        iss={"essential": True, "value": broker.url},
        aud={"essential": True, "value": "contacts"},
        exp={"essential": True},
        jti={"essential": True},
    ).validate(token.claims)
    assert token.header["typ"] == "at+jwt"
    assert token.claims["scope"] == "contacts.read"
    binding = {
        k: token.claims[k] for k in ("repository_id", "run_id", "run_attempt", "check_run_id")
    }
    claims = broker.issuer.claims
    assert binding == {k: claims[k] for k in binding}


def test_a_scope_the_policy_does_not_allow_is_invalid_scope_naming_it(
    broker: BrokerProcess,
) -> None:
    response = broker.exchange(scope="contacts.write")
    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == "invalid_scope"
    assert "contacts.write" in body["error_description"]


def test_a_replayed_id_token_is_invalid_grant(broker: BrokerProcess) -> None:
    id_token = broker.id_token()
    first = broker.exchange(subject_token=id_token)
    second = broker.exchange(subject_token=id_token)
    assert first.status_code == 200
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"


def test_an_id_token_for_another_audience_is_invalid_grant(broker: BrokerProcess) -> None:
    response = broker.exchange(subject_token=broker.issuer.mint(audience="https://other"))
    assert response.json()["error"] == "invalid_grant"


def test_an_unknown_connector_is_invalid_target(broker: BrokerProcess) -> None:
    assert broker.exchange(resource="nope").json()["error"] == "invalid_target"


def test_a_repeated_parameter_is_invalid_request(broker: BrokerProcess) -> None:
    body = f"grant_type={TOKEN_EXCHANGE}&scope=a&scope=b"
    response = requests.post(
        f"{broker.url}/token",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_an_oversized_body_is_refused_before_parsing(broker: BrokerProcess) -> None:
    response = requests.post(
        f"{broker.url}/token",
        data={"subject_token": "x" * 70_000},
        timeout=5,
    )
    assert response.status_code == 413


def test_revoke_of_an_unknown_token_is_200(broker: BrokerProcess) -> None:
    response = requests.post(f"{broker.url}/revoke", data={"token": "never-issued"}, timeout=5)
    assert response.status_code == 200


def test_introspection_without_credentials_is_401(broker: BrokerProcess) -> None:
    response = requests.post(f"{broker.url}/introspect", data={"token": "x"}, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


def test_introspection_with_a_wrong_secret_is_401(broker: BrokerProcess) -> None:
    response = requests.post(
        f"{broker.url}/introspect",
        data={"token": "x"},
        auth=("resource-server", broker.client_secret + "x"),
        timeout=5,
    )
    assert response.status_code == 401


def test_inactive_is_exactly_active_false(broker: BrokerProcess) -> None:
    response = broker.introspect("never-issued")
    assert response.status_code == 200
    assert response.text == '{"active":false}'


def test_the_proxy_injects_the_credential_and_checks_scope_and_revocation(
    broker: BrokerProcess,
) -> None:
    access_token = broker.exchange().json()["access_token"]
    bearer = {"Authorization": f"Bearer {access_token}"}
    ok = requests.get(f"{broker.url}/proxy/contacts/v1/contacts/2", headers=bearer, timeout=5)
    assert ok.status_code == 200
    assert ok.json()["name"] == "Grace Hopper"
    no_route = requests.delete(
        f"{broker.url}/proxy/contacts/v1/contacts/2", headers=bearer, timeout=5
    )
    assert no_route.status_code == 403
    dotted = requests.get(
        f"{broker.url}/proxy/contacts/v1/contacts/%2e%2e", headers=bearer, timeout=5
    )
    assert dotted.status_code == 400
    for path_parameter in ("v1/contacts/..;/2", "v1/contacts;x=1/2", "v1/contacts/2%3b"):
        refused_segment = requests.get(
            f"{broker.url}/proxy/contacts/{path_parameter}", headers=bearer, timeout=5
        )
        assert refused_segment.status_code == 400, path_parameter
    assert proxied(broker, None).status_code == 401
    requests.post(f"{broker.url}/revoke", data={"token": access_token}, timeout=5)
    refused = requests.get(f"{broker.url}/proxy/contacts/v1/contacts", headers=bearer, timeout=5)
    assert refused.status_code == 401


def test_passthrough_hands_out_the_stored_credential_under_a_lease(
    broker: BrokerProcess,
) -> None:
    response = broker.exchange(resource="vault", scope="ftp.read")
    body = response.json()
    assert body["access_token"] == broker.passthrough_credential
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["expires_in"] == 300
    assert broker.introspect(body["access_token"]).json()["token_kind"] == "passthrough"


def test_revocation_survives_a_restart(broker: BrokerProcess) -> None:
    access_token = broker.exchange().json()["access_token"]
    requests.post(f"{broker.url}/revoke", data={"token": access_token}, timeout=5)
    broker.restart()
    assert broker.introspect(access_token).json() == {"active": False}
    bearer = {"Authorization": f"Bearer {access_token}"}
    refused = requests.get(f"{broker.url}/proxy/contacts/v1/contacts", headers=bearer, timeout=5)
    assert refused.status_code == 401


def _webhook(broker: BrokerProcess, payload: bytes, signature: str) -> requests.Response:
    return requests.post(
        f"{broker.url}/webhooks/github",
        data=payload,
        headers={
            "X-GitHub-Event": "workflow_job",
            "X-Hub-Signature-256": signature,
            "Content-Type": "application/json",
        },
        timeout=5,
    )


def _completed_job_payload(broker: BrokerProcess, **overrides: str) -> bytes:
    claims = {**broker.issuer.claims, **overrides}
    return json.dumps(
        {
            "action": "completed",
            "repository": {"id": int(claims["repository_id"])},
            "workflow_job": {
                "id": int(claims["check_run_id"]),
                "run_id": int(claims["run_id"]),
                "run_attempt": int(claims["run_attempt"]),
            },
        }
    ).encode()


def test_a_webhook_with_a_bad_signature_is_rejected_and_revokes_nothing(
    broker: BrokerProcess,
) -> None:
    access_token = broker.exchange().json()["access_token"]
    payload = _completed_job_payload(broker)
    wrong = "sha256=" + hmac.new(b"not-the-secret", payload, hashlib.sha256).hexdigest()
    assert _webhook(broker, payload, wrong).status_code == 401
    assert _webhook(broker, payload, "").status_code == 401
    assert broker.introspect(access_token).json()["active"] is True


def test_a_completed_job_webhook_revokes_the_jobs_tokens(broker: BrokerProcess) -> None:
    # a run of its own: the job it ends can mint nothing more (test_job_end.py)
    access_token = broker.exchange(subject_token=broker.id_token(run_id="5150")).json()[
        "access_token"
    ]
    payload = _completed_job_payload(broker, run_id="5150")
    good = "sha256=" + hmac.new(broker.webhook_secret.encode(), payload, hashlib.sha256).hexdigest()
    response = _webhook(broker, payload, good)
    assert response.status_code == 200
    assert response.json()["revoked"] >= 1
    assert broker.introspect(access_token).json() == {"active": False}


def test_the_audit_chain_verifies_and_detects_tampering(
    broker: BrokerProcess, tmp_path: pytest.TempPathFactory
) -> None:
    broker.exchange()
    verified = broker.cli("audit", "verify", "--config", str(broker.config_path))
    assert verified.returncode == 0, verified.stderr.decode()
    assert b"audit chain intact" in verified.stdout

    copy = broker.workdir / "tampered.db"
    with sqlite3.connect(broker.db_path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    with sqlite3.connect(copy) as db:
        (seq,) = db.execute(
            'SELECT max(seq) FROM audit WHERE record LIKE \'%"decision":"issued"%\''
        ).fetchone()
        db.execute(
            "UPDATE audit SET record = replace(record, '\"issued\"', '\"denied\"') WHERE seq = ?",
            (seq,),
        )
    config = broker.workdir / "tampered.toml"
    config.write_text(broker.config_path.read_text().replace('"broker.db"', '"tampered.db"'))
    broken = broker.cli("audit", "verify", "--config", str(config))
    assert broken.returncode == 1
    assert f"record {seq}: content altered".encode() in broken.stderr


def test_audit_export_writes_one_json_record_per_decision(broker: BrokerProcess) -> None:
    token = broker.exchange().json()["access_token"]
    exported = broker.cli(
        "audit", "export", "--config", str(broker.config_path), "--format", "jsonl"
    )
    assert exported.returncode == 0
    records = [json.loads(line) for line in exported.stdout.decode().splitlines()]
    issued = [r for r in records if r["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()]
    assert len(issued) == 1
    assert issued[0]["decision"] == "issued"
    assert issued[0]["claims"]["repository_id"] == REPO_ID
    assert issued[0]["granted_scopes"] == ["contacts.read"]
    assert issued[0]["client_address"] == "127.0.0.1"
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))


def test_no_secret_reaches_the_logs_or_the_store(broker: BrokerProcess) -> None:
    id_token = broker.id_token()
    token = broker.exchange(subject_token=id_token).json()["access_token"]
    lease = broker.exchange(resource="vault", scope="ftp.read").json()["access_token"]
    requests.post(f"{broker.url}/revoke", data={"token": token}, timeout=5)
    broker.stop()  # flush the WAL into the database file
    try:
        secrets_as_text = [
            token,
            id_token,
            lease,
            broker.contacts.api_key,
            broker.master_key,
            broker.client_secret,
            broker.webhook_secret,
        ]
        files = [broker.log_path, *broker.workdir.glob("broker.db*")]
        blobs = b"".join(path.read_bytes() for path in files)
        for secret in secrets_as_text:
            assert secret.encode() not in blobs
        assert base64.b64decode(broker.master_key) not in blobs
        assert len(broker.log_path.read_text().splitlines()) > 10
    finally:
        broker.start()


def test_rotating_the_signing_key_keeps_old_tokens_verifiable(broker: BrokerProcess) -> None:
    before = broker.exchange().json()["access_token"]
    rotated = broker.cli("rotate-signing-key", "--config", str(broker.config_path))
    assert rotated.returncode == 0, rotated.stderr.decode()
    broker.restart()
    after = broker.exchange().json()["access_token"]
    jwks = KeySet.import_key_set(
        requests.get(f"{broker.url}/.well-known/jwks.json", timeout=5).json()
    )
    assert len(jwks.keys) == 2
    for access_token in (before, after):
        jose_jwt.decode(access_token, jwks, algorithms=["ES256"])
    assert proxied(broker, before).ok


def test_rotating_the_master_key_rewraps_without_losing_credentials(
    broker: BrokerProcess,
) -> None:
    new_key = base64.b64encode(bytes(range(32))).decode()
    (broker.workdir / "old.key").write_text(broker.master_key)
    (broker.workdir / "master.key").write_text(new_key)
    text = broker.config_path.read_text()
    broker.config_path.write_text(
        text.replace('master_key_file = "master.key"',
                     'master_key_file = "master.key"\nprevious_master_key_files = ["old.key"]')
    )  # fmt: skip
    rotated = broker.cli("rotate-master-key", "--config", str(broker.config_path))
    assert rotated.returncode == 0, rotated.stderr.decode()
    assert b"re-wrapped 4 record(s)" in rotated.stdout  # 2 credentials + 2 signing keys
    broker.config_path.write_text(text)  # the old key is no longer needed
    broker.master_key = new_key
    broker.restart()
    access_token = broker.exchange().json()["access_token"]
    assert proxied(broker, access_token).ok
    shutil.copy(broker.workdir / "old.key", broker.workdir / "unused.key")


def test_revoke_by_token_id_with_an_id_token_of_the_same_job(broker: BrokerProcess) -> None:
    issued = broker.exchange().json()
    form = {"token_id": issued["token_id"], "subject_token_type": ID_TOKEN_TYPE}
    other_run = broker.id_token(run_id="99")
    refused = requests.post(
        f"{broker.url}/revoke", data={**form, "subject_token": other_run}, timeout=5
    )
    assert refused.status_code == 200  # reveals nothing
    assert broker.introspect(issued["access_token"]).json()["active"] is True
    invalid = requests.post(f"{broker.url}/revoke", data={**form, "subject_token": "x"}, timeout=5)
    assert invalid.json()["error"] == "invalid_grant"
    done = requests.post(
        f"{broker.url}/revoke", data={**form, "subject_token": broker.id_token()}, timeout=5
    )
    assert done.status_code == 200
    assert broker.introspect(issued["access_token"]).json() == {"active": False}


def test_an_oversized_webhook_is_refused_before_its_signature_is_checked(
    broker: BrokerProcess,
) -> None:
    payload = b"{" + b" " * (1024 * 1024) + b"}"
    signature = (
        "sha256=" + hmac.new(broker.webhook_secret.encode(), payload, hashlib.sha256).hexdigest()
    )
    assert _webhook(broker, payload, signature).status_code == 413
