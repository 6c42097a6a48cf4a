"""`provider: azure-key-vault` against the loopback fake of Entra ID and Key Vault."""

from __future__ import annotations

import datetime
import json
import time

import pytest

from jobtoken.action.errors import ProviderError
from jobtoken.action.provider import ExchangeRequest
from jobtoken.action.providers.azure import exchange, key_vault_scope, revoke
from support.fake_azure import FakeAzure, FederatedCredential, KvSecret
from support.oidc_issuer import FakeOidcIssuer
from support.provider_requests import exchange_request, revoke_request

UTC = datetime.timezone.utc


def _in(seconds: int) -> str:
    return (datetime.datetime.now(UTC) + datetime.timedelta(seconds=seconds)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def _request(
    issuer: FakeOidcIssuer, fake: FakeAzure, audiences: list[str] | None = None, **more: str
) -> ExchangeRequest:
    inputs = {
        "azure_client_id": fake.client_id,
        "azure_tenant_id": fake.tenant_id,
        "azure_key_vault_url": fake.url,
        "azure_secret_name": "hubspot",
        "azure_authority_url": fake.url,
        "scopes": "crm.read",
        **more,
    }
    return exchange_request(issuer, "azure-key-vault", audiences=audiences, **inputs)


def _document(seconds: int = 600) -> str:
    return json.dumps(
        {"token": "pat-azure-hubspot", "scopes": ["crm.read"], "expires_at": _in(seconds)}
    )


def test_federated_credential_reads_the_secret(
    module_issuer: FakeOidcIssuer, fake_azure: FakeAzure
) -> None:
    fake_azure.add_secret("hubspot", KvSecret(_document()))
    audiences: list[str] = []
    issued = exchange(_request(module_issuer, fake_azure, audiences))
    assert issued.access_token == "pat-azure-hubspot"
    assert issued.scopes == ("crm.read",)
    assert issued.expires_in is not None
    assert 590 <= issued.expires_in <= 600
    assert audiences == ["api://AzureADTokenExchange"]
    token_call, secret_call = fake_azure.calls
    assert token_call.path == f"/{fake_azure.tenant_id}/oauth2/v2.0/token"
    assert secret_call.path == "/secrets/hubspot"
    assert secret_call.query == {"api-version": ["7.4"]}
    assert len(issued.extra_secrets) == 1


def test_plain_value_uses_tags_and_attributes_exp_bounds_the_expiry(
    module_issuer: FakeOidcIssuer, fake_azure: FakeAzure
) -> None:
    exp = int(time.time()) + 120
    fake_azure.add_secret(
        "hubspot",
        KvSecret(
            "pat-plain",
            tags={"jobtoken-scopes": "crm.read", "jobtoken-expires-at": _in(600)},
            exp=exp,
        ),
    )
    issued = exchange(_request(module_issuer, fake_azure))
    assert issued.scopes == ("crm.read",)
    assert issued.expires_in is not None
    assert 110 <= issued.expires_in <= 120


def test_specific_version(module_issuer: FakeOidcIssuer, fake_azure: FakeAzure) -> None:
    secret = KvSecret(_document())
    fake_azure.add_secret("hubspot", secret)
    exchange(_request(module_issuer, fake_azure, azure_secret_version=secret.version))
    assert fake_azure.calls[-1].path == f"/secrets/hubspot/{secret.version}"


def test_subject_mismatch_names_the_subject(
    module_issuer: FakeOidcIssuer, fake_azure: FakeAzure
) -> None:
    fake_azure.apps[fake_azure.client_id] = [
        FederatedCredential(module_issuer.url, "repo:octo-org/octo-repo:environment:prod")
    ]
    with pytest.raises(ProviderError) as caught:
        exchange(_request(module_issuer, fake_azure))
    assert caught.value.denied
    assert (
        "its subject must be 'repo:octo-org/octo-repo:ref:refs/heads/main'" in caught.value.message
    )
    assert "AADSTS700213" in caught.value.message


def test_audience_mismatch(module_issuer: FakeOidcIssuer, fake_azure: FakeAzure) -> None:
    with pytest.raises(ProviderError, match="does not accept the audience 'https://other'"):
        exchange(_request(module_issuer, fake_azure, audience="https://other"))


def test_unknown_client_and_tenant(module_issuer: FakeOidcIssuer, fake_azure: FakeAzure) -> None:
    other = "00000000-0000-0000-0000-000000000001"
    with pytest.raises(ProviderError, match="check azure-client-id and azure-tenant-id"):
        exchange(_request(module_issuer, fake_azure, azure_client_id=other))
    with pytest.raises(ProviderError, match=f"there is no tenant {other}"):
        exchange(_request(module_issuer, fake_azure, azure_tenant_id=other))


def test_missing_role_assignment(module_issuer: FakeOidcIssuer, fake_azure: FakeAzure) -> None:
    fake_azure.add_secret("hubspot", KvSecret(_document()), readers=set())
    with pytest.raises(ProviderError, match="Key Vault Secrets User") as caught:
        exchange(_request(module_issuer, fake_azure))
    assert caught.value.denied


def test_missing_secret(module_issuer: FakeOidcIssuer, fake_azure: FakeAzure) -> None:
    with pytest.raises(ProviderError, match="has no secret hubspot"):
        exchange(_request(module_issuer, fake_azure))


def test_disabled_and_not_yet_valid_secrets_are_refused(
    module_issuer: FakeOidcIssuer, fake_azure: FakeAzure
) -> None:
    fake_azure.add_secret("hubspot", KvSecret(_document(), nbf=int(time.time()) + 3600))
    with pytest.raises(ProviderError, match="not valid yet"):
        exchange(_request(module_issuer, fake_azure))


def test_scope_follows_the_vaults_cloud() -> None:
    assert key_vault_scope("https://kv1.vault.azure.net") == "https://vault.azure.net/.default"
    assert key_vault_scope("https://kv1.vault.azure.cn") == "https://vault.azure.cn/.default"
    assert (
        key_vault_scope("https://kv1.vault.usgovcloudapi.net")
        == "https://vault.usgovcloudapi.net/.default"
    )


def test_revoke_says_entra_cannot_revoke(module_issuer: FakeOidcIssuer) -> None:
    assert revoke(revoke_request(module_issuer, {})).startswith(
        "nothing to revoke: Entra ID cannot"
    )
