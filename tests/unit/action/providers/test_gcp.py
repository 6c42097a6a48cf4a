"""`provider: gcp-secret-manager` against the fake of STS, IAM Credentials and Secret Manager."""

from __future__ import annotations

import datetime
import json

import pytest

from jobtoken.action.errors import ProviderError
from jobtoken.action.provider import ExchangeRequest
from jobtoken.action.providers.gcp import crc32c, exchange, revoke
from support import fake_gcp as fake_gcp_module
from support.fake_gcp import FakeGcp
from support.oidc_issuer import FakeOidcIssuer
from support.provider_requests import exchange_request, revoke_request

UTC = datetime.timezone.utc
SA = "connector-reader@my-project.iam.gserviceaccount.com"
SECRET = "projects/my-project/secrets/hubspot"


def _in(seconds: int) -> str:
    return (datetime.datetime.now(UTC) + datetime.timedelta(seconds=seconds)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def _request(
    issuer: FakeOidcIssuer, fake: FakeGcp, audiences: list[str] | None = None, **more: str
) -> ExchangeRequest:
    inputs = {
        "gcp_workload_identity_provider": fake.provider_resource,
        "gcp_secret": SECRET,
        "gcp_sts_endpoint_url": fake.url,
        "gcp_iam_credentials_endpoint_url": fake.url,
        "gcp_secret_manager_endpoint_url": fake.url,
        "scopes": "crm.read",
        **more,
    }
    return exchange_request(issuer, "gcp-secret-manager", audiences=audiences, **inputs)


def _document(**extra: object) -> str:
    return json.dumps(
        {"token": "pat-gcp-hubspot", "scopes": ["crm.read"], "expires_at": _in(600), **extra}
    )


def test_federated_identity_reads_the_secret_directly(
    module_issuer: FakeOidcIssuer, fake_gcp: FakeGcp
) -> None:
    fake_gcp.add_secret(
        "hubspot", _document(), readers={fake_gcp.principal_set("octo-org/octo-repo")}
    )
    audiences: list[str] = []
    issued = exchange(_request(module_issuer, fake_gcp, audiences))
    assert issued.access_token == "pat-gcp-hubspot"
    assert issued.scopes == ("crm.read",)
    assert issued.expires_in is not None
    assert 590 <= issued.expires_in <= 600
    assert audiences == [fake_gcp.allowed_audience]
    assert [c.path for c in fake_gcp.calls] == ["/v1/token", f"/v1/{SECRET}/versions/latest:access"]
    assert len(issued.extra_secrets) == 1
    assert issued.extra_secrets[0].startswith("ya29.fed-")


def test_service_account_impersonation_with_a_short_lifetime(
    module_issuer: FakeOidcIssuer, fake_gcp: FakeGcp
) -> None:
    fake_gcp.impersonators[SA] = {"octo-org/octo-repo"}
    fake_gcp.add_secret("hubspot", _document(), readers={SA})
    issued = exchange(
        _request(module_issuer, fake_gcp, gcp_service_account=SA, gcp_secret_version="1")
    )
    assert issued.access_token == "pat-gcp-hubspot"
    generate = fake_gcp.calls[1]
    assert generate.path == f"/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"
    assert generate.json() == {
        "scope": ["https://www.googleapis.com/auth/cloud-platform"],
        "lifetime": "300s",
    }
    assert fake_gcp.calls[2].path == f"/v1/{SECRET}/versions/1:access"
    assert len(issued.extra_secrets) == 2


def test_plain_string_reads_annotations(module_issuer: FakeOidcIssuer, fake_gcp: FakeGcp) -> None:
    principal = fake_gcp.principal_set("octo-org/octo-repo")
    fake_gcp.add_secret(
        "hubspot",
        "pat-plain",
        readers={principal},
        metadata_readers={principal},
        annotations={"jobtoken-scopes": "crm.read", "jobtoken-expires-at": _in(300)},
    )
    issued = exchange(_request(module_issuer, fake_gcp))
    assert (issued.access_token, issued.scopes) == ("pat-plain", ("crm.read",))
    assert fake_gcp.calls[-1].path == f"/v1/{SECRET}"


def test_plain_string_without_metadata_permission_names_it(
    module_issuer: FakeOidcIssuer, fake_gcp: FakeGcp
) -> None:
    fake_gcp.add_secret(
        "hubspot", "pat-plain", readers={fake_gcp.principal_set("octo-org/octo-repo")}
    )
    with pytest.raises(ProviderError, match=r"needs secretmanager\.secrets\.get"):
        exchange(_request(module_issuer, fake_gcp))


def test_wrong_audience_is_named(module_issuer: FakeOidcIssuer, fake_gcp: FakeGcp) -> None:
    with pytest.raises(
        ProviderError, match="does not accept the audience 'https://wrong'"
    ) as caught:
        exchange(_request(module_issuer, fake_gcp, audience="https://wrong"))
    assert caught.value.denied


def test_attribute_condition_rejection_shows_the_claims(
    module_issuer: FakeOidcIssuer, fake_gcp: FakeGcp
) -> None:
    fake_gcp.attribute_condition = {"repository": "octo-org/other"}
    with pytest.raises(ProviderError, match="attribute condition rejects this job") as caught:
        exchange(_request(module_issuer, fake_gcp))
    assert "repository='octo-org/octo-repo'" in caught.value.message


def test_unknown_pool_provider(module_issuer: FakeOidcIssuer, fake_gcp: FakeGcp) -> None:
    other = fake_gcp.provider_resource.replace("providers/github", "providers/gitlab")
    with pytest.raises(ProviderError, match="project NUMBER"):
        exchange(
            _request(module_issuer, fake_gcp, gcp_workload_identity_provider=other, audience="x")
        )


def test_missing_impersonation_grant_names_the_role(
    module_issuer: FakeOidcIssuer, fake_gcp: FakeGcp
) -> None:
    with pytest.raises(ProviderError, match=r"grant roles/iam\.workloadIdentityUser") as caught:
        exchange(_request(module_issuer, fake_gcp, gcp_service_account=SA))
    assert "attribute.repository/octo-org/octo-repo" in caught.value.message


def test_missing_secret_access_names_the_role(
    module_issuer: FakeOidcIssuer, fake_gcp: FakeGcp
) -> None:
    fake_gcp.add_secret("hubspot", _document(), readers=set())
    with pytest.raises(ProviderError, match=r"grant roles/secretmanager\.secretAccessor") as caught:
        exchange(_request(module_issuer, fake_gcp))
    assert caught.value.denied


def test_missing_version(module_issuer: FakeOidcIssuer, fake_gcp: FakeGcp) -> None:
    fake_gcp.add_secret(
        "hubspot", _document(), readers={fake_gcp.principal_set("octo-org/octo-repo")}
    )
    with pytest.raises(
        ProviderError, match="has no projects/my-project/secrets/hubspot/versions/7"
    ):
        exchange(_request(module_issuer, fake_gcp, gcp_secret_version="7"))


def test_corrupted_payload_fails_its_checksum(
    module_issuer: FakeOidcIssuer, fake_gcp: FakeGcp, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_gcp.add_secret(
        "hubspot", _document(), readers={fake_gcp.principal_set("octo-org/octo-repo")}
    )
    monkeypatch.setattr(fake_gcp_module, "crc32c", lambda data: 12345)
    with pytest.raises(ProviderError, match="CRC32C"):
        exchange(_request(module_issuer, fake_gcp))


def test_crc32c_known_answers() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert fake_gcp_module.crc32c(b"any payload \x00\xff") == crc32c(b"any payload \x00\xff")


def test_revoke_says_google_cannot_revoke(module_issuer: FakeOidcIssuer) -> None:
    assert revoke(revoke_request(module_issuer, {})).startswith("nothing to revoke: Google cannot")
