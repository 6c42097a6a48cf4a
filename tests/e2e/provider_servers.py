"""Fixtures for the secret-manager providers' end-to-end tests.

Imported by ``test_providers.py``. Every server is started once per module and
trusts one module-wide fake issuer, which the workflows get their ID tokens
from (``run_act(..., issuer=e2e_issuer)``). Each provider is set up with the same
five connector secrets, one per case of the fail-closed contract:

- ``ok``: scopes ``crm.read``, expires in 10 minutes;
- ``extra``: scopes ``crm.read crm.write`` (more than the job asks for);
- ``distant``: expires in 30 days (beyond ttl/max-ttl);
- ``noexpiry``: no expiry anywhere;
- ``bad``: a token with a space, a line break and a workflow command in it.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from support.aws_server import MotoServer
from support.fake_azure import FakeAzure, KvSecret
from support.fake_gcp import FakeGcp
from support.oidc_issuer import FakeOidcIssuer
from support.openbao import OpenBaoDevServer, configure_github_jwt

BAO_AUDIENCE = "https://bao.e2e.example"
GCP_SA = "connector-reader@my-project.iam.gserviceaccount.com"


@dataclass(frozen=True)
class Case:
    name: str
    document: dict[str, object]


def _in(seconds: int) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def cases(prefix: str) -> list[Case]:
    """The five secrets; every token is unique to the provider so a leak is attributable."""
    return [
        Case(
            "ok", {"token": f"{prefix}-ok-7f3a9c", "scopes": ["crm.read"], "expires_at": _in(600)}
        ),
        Case(
            "extra",
            {
                "token": f"{prefix}-extra-1b2c3d",
                "scopes": "crm.read crm.write",
                "expires_at": _in(600),
            },
        ),
        Case(
            "distant",
            {
                "token": f"{prefix}-distant-9e8d7c",
                "scopes": ["crm.read"],
                "expires_at": _in(30 * 86400),
            },
        ),
        Case("noexpiry", {"token": f"{prefix}-noexpiry-5a4b3c", "scopes": ["crm.read"]}),
        Case(
            "bad",
            {
                "token": f"{prefix}-bad-4f5e6d tail-3e2d1c\n::warning::injected-8c7b",
                "scopes": ["crm.read"],
                "expires_at": _in(600),
            },
        ),
    ]


@dataclass
class Deployed:
    """What a workflow needs: the `with:` inputs per case, and the secrets to look for."""

    inputs: dict[str, dict[str, str]]
    tokens: dict[str, str]
    #: credentials the cloud issued along the way, read after the run
    cloud_secrets: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def e2e_issuer() -> Iterator[FakeOidcIssuer]:
    with FakeOidcIssuer() as issuer:
        yield issuer


@pytest.fixture(scope="module")
def vault_deployed(e2e_issuer: FakeOidcIssuer) -> Iterator[tuple[OpenBaoDevServer, Deployed]]:
    with OpenBaoDevServer() as bao:
        configure_github_jwt(
            bao,
            issuer_url=e2e_issuer.url,
            audience=BAO_AUDIENCE,
            repository=e2e_issuer.claims["repository"],
        )
        deployed = Deployed(inputs={}, tokens={})
        for case in cases("vault"):
            bao.api("POST", f"secret/data/connectors/{case.name}", {"data": case.document})
            deployed.tokens[case.name] = str(case.document["token"])
            deployed.inputs[case.name] = {
                "provider": "vault",
                "vault-url": bao.url,
                "vault-role": "connector-reader",
                "vault-secret-path": f"secret/data/connectors/{case.name}",
                "audience": BAO_AUDIENCE,
            }
        yield bao, deployed


@pytest.fixture(scope="module")
def aws_deployed() -> Iterator[tuple[MotoServer, Deployed]]:
    with MotoServer() as aws:
        role = aws.create_role("gh-e2e", allowed_actions=["secretsmanager:GetSecretValue"])
        deployed = Deployed(inputs={}, tokens={})
        for case in cases("aws"):
            aws.create_secret(f"connectors/{case.name}", json.dumps(case.document))
            deployed.tokens[case.name] = str(case.document["token"])
            deployed.inputs[case.name] = {
                "provider": "aws-secrets-manager",
                "aws-role-arn": role,
                "aws-region": "us-east-1",
                "aws-secret-id": f"connectors/{case.name}",
                "aws-endpoint-url": aws.url,
                "aws-sts-endpoint-url": aws.url,
            }
        yield aws, deployed


@pytest.fixture(scope="module")
def gcp_deployed(e2e_issuer: FakeOidcIssuer) -> Iterator[tuple[FakeGcp, Deployed]]:
    with FakeGcp(e2e_issuer) as gcp:
        gcp.impersonators[GCP_SA] = {e2e_issuer.claims["repository"]}
        deployed = Deployed(inputs={}, tokens={})
        for case in cases("gcp"):
            gcp.add_secret(case.name, json.dumps(case.document), readers={GCP_SA})
            deployed.tokens[case.name] = str(case.document["token"])
            deployed.inputs[case.name] = {
                "provider": "gcp-secret-manager",
                "gcp-workload-identity-provider": gcp.provider_resource,
                "gcp-service-account": GCP_SA,
                "gcp-secret": f"projects/my-project/secrets/{case.name}",
                "gcp-sts-endpoint-url": gcp.url,
                "gcp-iam-credentials-endpoint-url": gcp.url,
                "gcp-secret-manager-endpoint-url": gcp.url,
            }
        yield gcp, deployed
        assert gcp.violations == [], "the provider broke the documented request shape"


@pytest.fixture(scope="module")
def azure_deployed(e2e_issuer: FakeOidcIssuer) -> Iterator[tuple[FakeAzure, Deployed]]:
    with FakeAzure(e2e_issuer) as azure:
        deployed = Deployed(inputs={}, tokens={})
        for case in cases("azure"):
            name = f"connector-{case.name}"
            azure.add_secret(name, KvSecret(json.dumps(case.document)))
            deployed.tokens[case.name] = str(case.document["token"])
            deployed.inputs[case.name] = {
                "provider": "azure-key-vault",
                "azure-client-id": azure.client_id,
                "azure-tenant-id": azure.tenant_id,
                "azure-key-vault-url": azure.url,
                "azure-secret-name": name,
                "azure-authority-url": azure.url,
            }
        yield azure, deployed
        assert azure.violations == [], "the provider broke the documented request shape"
