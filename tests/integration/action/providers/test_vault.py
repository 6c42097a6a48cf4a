"""`provider: vault` against a real OpenBao dev server trusting the fake issuer."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from jobtoken.action.errors import ProviderError
from jobtoken.action.providers.vault import exchange, revoke
from support.oidc_issuer import FakeOidcIssuer
from support.openbao import BAO_AUDIENCE, OpenBaoDevServer
from support.provider_requests import exchange_request, revoke_request

UTC = datetime.timezone.utc


def _in(seconds: int) -> str:
    when = datetime.datetime.now(UTC) + datetime.timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _put_kv2(
    bao: OpenBaoDevServer, name: str, data: dict[str, Any], custom: dict[str, str] | None = None
) -> str:
    bao.api("POST", f"secret/data/connectors/{name}", {"data": data})
    if custom is not None:
        bao.api("POST", f"secret/metadata/connectors/{name}", {"custom_metadata": custom})
    return f"secret/data/connectors/{name}"


def _inputs(path: str, **more: str) -> dict[str, str]:
    return {
        "vault_url": "",  # replaced per test
        "vault_role": "connector-reader",
        "vault_secret_path": path,
        "audience": BAO_AUDIENCE,
        "scopes": "crm.read",
        **more,
    }


def _request(issuer: FakeOidcIssuer, bao: OpenBaoDevServer, path: str, **more: str) -> Any:
    inputs = _inputs(path, **more)
    inputs["vault_url"] = bao.url
    return exchange_request(issuer, "vault", **inputs)


def test_kv2_document_is_exchanged_and_vault_token_kept_for_revocation(
    module_issuer: FakeOidcIssuer, openbao: OpenBaoDevServer
) -> None:
    path = _put_kv2(
        openbao,
        "hubspot",
        {"token": "pat-hubspot-1", "scopes": ["crm.read"], "expires_at": _in(600)},
    )
    issued = exchange(_request(module_issuer, openbao, path))
    assert issued.access_token == "pat-hubspot-1"
    assert issued.scopes == ("crm.read",)
    assert issued.expires_in is not None
    assert 590 <= issued.expires_in <= 600
    vault_token = issued.revoke_state["vault_token"]
    assert issued.extra_secrets == (vault_token,)
    assert issued.token_id.startswith("vault:")
    assert "pat-hubspot" not in issued.token_id
    looked_up = openbao.api("GET", "auth/token/lookup-self", token=vault_token)
    assert looked_up["data"]["policies"] == ["connector-reader", "default"]

    outcome = revoke(revoke_request(module_issuer, dict(issued.revoke_state)))
    assert outcome == "revoked the Vault token"
    with pytest.raises(RuntimeError, match="403"):
        openbao.api("GET", "auth/token/lookup-self", token=vault_token)
    again = revoke(revoke_request(module_issuer, dict(issued.revoke_state)))
    assert again == "the Vault token had already expired or been revoked"


def test_plain_token_takes_scopes_and_expiry_from_custom_metadata(
    module_issuer: FakeOidcIssuer, openbao: OpenBaoDevServer
) -> None:
    path = _put_kv2(
        openbao,
        "slack",
        {"token": "xoxb-1"},
        {"jobtoken-scopes": "chat:write", "jobtoken-expires-at": _in(300)},
    )
    issued = exchange(_request(module_issuer, openbao, path))
    assert issued.scopes == ("chat:write",)
    assert issued.expires_in is not None
    assert 290 <= issued.expires_in <= 300


def test_no_expiry_anywhere_gives_none_for_the_checks_to_refuse(
    module_issuer: FakeOidcIssuer, openbao: OpenBaoDevServer
) -> None:
    path = _put_kv2(openbao, "notion", {"token": "secret-notion", "scopes": "read"})
    assert exchange(_request(module_issuer, openbao, path)).expires_in is None


def test_lease_bounds_the_expiry_and_revocation_ends_the_lease(
    module_issuer: FakeOidcIssuer, openbao: OpenBaoDevServer
) -> None:
    openbao.api("POST", "sys/mounts/kv1", {"type": "kv", "options": {"version": "1"}})
    openbao.api(
        "POST",
        "kv1/connectors/leased",
        {"token": "leased-token-1", "scopes": "a", "ttl": "120s", "expires_at": _in(3600)},
    )
    issued = exchange(_request(module_issuer, openbao, "kv1/connectors/leased"))
    assert issued.expires_in is not None
    assert 110 <= issued.expires_in <= 120


def test_role_whose_bound_claims_reject_the_job_is_denied_with_the_claim_value(
    module_issuer: FakeOidcIssuer, openbao: OpenBaoDevServer
) -> None:
    path = _put_kv2(openbao, "rejected", {"token": "never-seen", "scopes": "a"})
    with pytest.raises(ProviderError) as caught:
        exchange(_request(module_issuer, openbao, path, vault_role="other-repo"))
    assert caught.value.denied
    assert "bound_claims" in caught.value.message
    assert "repository is 'octo-org/octo-repo'" in caught.value.message
    assert caught.value.details["sub"] == module_issuer.claims["sub"]


def test_wrong_audience_names_the_audience(
    module_issuer: FakeOidcIssuer, openbao: OpenBaoDevServer
) -> None:
    path = _put_kv2(openbao, "aud", {"token": "never-seen", "scopes": "a"})
    with pytest.raises(
        ProviderError, match=r"does not accept the audience https://wrong\.example"
    ) as caught:
        exchange(_request(module_issuer, openbao, path, audience="https://wrong.example"))
    assert caught.value.denied


@pytest.mark.parametrize(
    ("more", "path", "message"),
    [
        ({"vault_role": "nope"}, "secret/data/connectors/x", "has no role nope"),
        (
            {"vault_auth_mount": "github"},
            "secret/data/connectors/x",
            "no auth method is mounted at auth/github",
        ),
        ({}, "secret/data/connectors/missing", "no secret at secret/data/connectors/missing"),
        ({}, "secret/data/elsewhere/x", "policies do not allow reading secret/data/elsewhere/x"),
    ],
)
def test_misconfigurations_say_what_to_fix(
    module_issuer: FakeOidcIssuer,
    openbao: OpenBaoDevServer,
    more: dict[str, str],
    path: str,
    message: str,
) -> None:
    with pytest.raises(ProviderError, match=message):
        exchange(_request(module_issuer, openbao, path, **more))


def test_failed_read_revokes_the_vault_token(
    module_issuer: FakeOidcIssuer, openbao: OpenBaoDevServer
) -> None:
    before = openbao.api("LIST", "auth/token/accessors")["data"]["keys"]
    with pytest.raises(ProviderError):
        exchange(_request(module_issuer, openbao, "secret/data/connectors/missing"))
    after = openbao.api("LIST", "auth/token/accessors")["data"]["keys"]
    assert sorted(after) == sorted(before)


def test_bad_document_fails_without_echoing_it(
    module_issuer: FakeOidcIssuer, openbao: OpenBaoDevServer
) -> None:
    path = _put_kv2(openbao, "bad", {"token": "has space", "scopes": "a"})
    before = openbao.api("LIST", "auth/token/accessors")["data"]["keys"]
    with pytest.raises(ProviderError, match="spaces") as caught:
        exchange(_request(module_issuer, openbao, path))
    assert "has space" not in json.dumps(caught.value.args)
    # nothing was handed over, so the Vault token is already revoked
    assert sorted(openbao.api("LIST", "auth/token/accessors")["data"]["keys"]) == sorted(before)
