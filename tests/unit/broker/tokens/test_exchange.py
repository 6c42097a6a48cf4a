"""The exchange use case in-process: real verifier (loopback issuer), real store and
signer; the policy is a plain function standing in for the admins' file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobtoken.broker.audit.chain import AUDITED_CLAIMS, AuditLog
from jobtoken.broker.connectors.model import Connector
from jobtoken.broker.errors import BrokerError
from jobtoken.broker.oidc.jwks import TrustedIssuer
from jobtoken.broker.oidc.verifier import IdTokenVerifier, VerifiedClaims, VerifierConfig
from jobtoken.broker.ops.metrics import Metrics
from jobtoken.broker.secrets.envelope import Envelope, MasterKey
from jobtoken.broker.store import SqlStore, open_store
from jobtoken.broker.tokens.exchange import (
    TokenExchange,
    TokenRequest,
    token_sha256,
)
from jobtoken.broker.tokens.signing import SigningKeys, TokenSigner
from jobtoken.policy.evaluate import PolicyDecision
from support.oidc_issuer import FakeOidcIssuer

AUDIENCE = "https://broker.test"
CONNECTORS = {
    "contacts": Connector(name="contacts", scopes=("contacts.read", "contacts.write"), max_ttl=600),
    "ftp": Connector(name="ftp", kind="passthrough", allow_passthrough=True, max_ttl=120),
}


class Policy:
    """Allows contacts.read with max_ttl 300; records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...], int]] = []

    def __call__(
        self, claims: VerifiedClaims, connector: str, scopes: tuple[str, ...], ttl: int
    ) -> PolicyDecision:
        self.calls.append((connector, scopes, ttl))
        if set(scopes) <= {"contacts.read", "ftp.read"}:
            return PolicyDecision(allowed=True, reason="allowed", description="", max_ttl=300)
        return PolicyDecision(
            allowed=False,
            reason="scope_not_allowed",
            description="the policy does not allow scope contacts.write",
        )


Parts = tuple[FakeOidcIssuer, SqlStore, TokenExchange, Policy, Envelope]


@pytest.fixture
def parts(
    tmp_path: Path,
) -> Iterator[tuple[FakeOidcIssuer, SqlStore, TokenExchange, Policy, Envelope]]:
    with FakeOidcIssuer() as issuer:
        store = open_store("sqlite", path=tmp_path / "broker.db")
        envelope = Envelope(MasterKey.generate())
        keys = SigningKeys(store, envelope)
        keys.ensure_current()
        policy = Policy()
        verifier = IdTokenVerifier(
            VerifierConfig(
                issuers=(TrustedIssuer(issuer.url, allow_http_loopback=True),), audience=AUDIENCE
            ),
            store,
        )
        exchange = TokenExchange(
            verifier=verifier,
            policy=policy,
            connectors=CONNECTORS,
            signer=TokenSigner(keys, AUDIENCE),
            store=store,
            envelope=envelope,
            audit=AuditLog(store),
            metrics=Metrics(),
            default_ttl=900,
            max_ttl=3600,
        )
        yield issuer, store, exchange, policy, envelope
        store.close()


def _request(issuer: FakeOidcIssuer, **kw: object) -> TokenRequest:
    fields: dict[str, object] = {
        "subject_token": issuer.mint(audience=AUDIENCE),
        "connector": "contacts",
        "scope": "contacts.read",
        **kw,
    }
    return TokenRequest(**fields)  # type: ignore[arg-type]


def _audit(store: SqlStore) -> list[dict[str, object]]:
    return [json.loads(row.record) for row in store.audit_rows()]


def test_an_allowed_request_is_issued_audited_and_recorded(parts: Parts) -> None:
    issuer, store, exchange, policy, _ = parts
    issued = exchange.exchange(_request(issuer, client_address="127.0.0.1", user_agent="ua"))
    assert issued.expires_in == 300  # min(default 900, policy 300, connector 600, broker 3600)
    assert policy.calls == [("contacts", ("contacts.read",), 900)]
    (record,) = _audit(store)
    assert record["decision"] == "issued"
    assert record["token_sha256"] == token_sha256(issued.access_token)
    assert record["token_id"] == issued.token_id
    assert record["granted_scopes"] == ["contacts.read"]
    expected = {"iss": issuer.url, **issuer.claims}
    assert record["claims"] == {k: expected[k] for k in AUDITED_CLAIMS if expected.get(k)}
    assert issued.access_token not in json.dumps(record)
    row = store.find_token(issued.token_id)
    assert row is not None
    assert row.check_run_id == issuer.claims["check_run_id"]


def test_the_requested_ttl_is_capped_but_never_raised(parts: Parts) -> None:
    issuer, _, exchange, _, _ = parts
    assert exchange.exchange(_request(issuer, ttl=60)).expires_in == 60
    assert exchange.exchange(_request(issuer, ttl=100_000)).expires_in == 300


def test_a_denied_scope_is_audited_with_its_reason(parts: Parts) -> None:
    issuer, store, exchange, _, _ = parts
    with pytest.raises(BrokerError) as info:
        exchange.exchange(_request(issuer, scope="contacts.read contacts.write"))
    assert info.value.error == "invalid_scope"
    assert "contacts.write" in info.value.description
    (record,) = _audit(store)
    assert record["decision"] == "denied"
    assert record["reason"] == "scope_not_allowed"
    assert record["requested_scopes"] == ["contacts.read", "contacts.write"]


@pytest.mark.parametrize(
    ("kw", "error", "reason"),
    [
        ({"subject_token": "not-a-jwt"}, "invalid_grant", "malformed"),
        ({"connector": "nope"}, "invalid_target", "unknown_connector"),
        ({"scope": ""}, "invalid_scope", "malformed_scope"),
        ({"scope": "a  b"}, "invalid_scope", "malformed_scope"),
        ({"scope": "contacts.delete"}, "invalid_scope", "unknown_scope"),
        ({"connector": "ftp", "scope": "ftp.read"}, "invalid_target", "credential_missing"),
    ],
)
def test_refusals_name_the_failed_check(
    parts: Parts,
    kw: dict[str, str],
    error: str,
    reason: str,
) -> None:
    issuer, store, exchange, policy, _ = parts
    with pytest.raises(BrokerError) as info:
        exchange.exchange(_request(issuer, **kw))
    assert (info.value.error, info.value.reason) == (error, reason)
    assert _audit(store)[-1]["reason"] == reason
    if error != "invalid_target" or reason == "unknown_connector":
        assert policy.calls == []


def test_the_id_token_is_verified_before_the_connector_is_looked_up(parts: Parts) -> None:
    issuer, _, exchange, _, _ = parts
    with pytest.raises(BrokerError) as info:
        exchange.exchange(_request(issuer, subject_token="x", connector="nope"))
    assert info.value.error == "invalid_grant"


def test_passthrough_leases_the_stored_credential(parts: Parts) -> None:
    issuer, store, exchange, _, envelope = parts
    store.put_credential("ftp", envelope.encrypt("connector:ftp", b"ftp-password"), 0)
    issued = exchange.exchange(_request(issuer, connector="ftp", scope="ftp.read"))
    assert issued.access_token == "ftp-password"
    assert issued.issued_token_type == "urn:ietf:params:oauth:token-type:access_token"
    assert issued.expires_in == 120
    assert store.find_tokens(token_sha256("ftp-password"))[0].kind == "passthrough"
