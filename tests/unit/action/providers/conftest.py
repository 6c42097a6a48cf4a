"""Real servers and loopback fakes for the secret-manager providers' unit tests.

Servers are started once per test module (each test uses its own secrets or
roles), the fake issuer once per module too so that OpenBao can trust its JWKS.
A test needing a missing tool fails with a message saying what to install.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from jobtoken.action.deadline import Deadline
from jobtoken.action.inputs import InputReader, read_exchange_inputs
from jobtoken.action.providers import ExchangeRequest, RevokeRequest
from jobtoken.testing.aws_server import MotoServer
from jobtoken.testing.fake_azure import FakeAzure
from jobtoken.testing.fake_gcp import FakeGcp
from jobtoken.testing.oidc_issuer import FakeOidcIssuer
from jobtoken.testing.openbao import OpenBaoDevServer, configure_github_jwt

BAO_AUDIENCE = "https://bao.example"

MakeRequest = Callable[..., ExchangeRequest]


@pytest.fixture(scope="module")
def module_issuer() -> Iterator[FakeOidcIssuer]:
    with FakeOidcIssuer() as issuer:
        yield issuer


@pytest.fixture(scope="module")
def openbao(module_issuer: FakeOidcIssuer) -> Iterator[OpenBaoDevServer]:
    """OpenBao with JWT auth trusting the module's fake issuer (see configure_github_jwt)."""
    with OpenBaoDevServer() as bao:
        configure_github_jwt(
            bao,
            issuer_url=module_issuer.url,
            audience=BAO_AUDIENCE,
            repository=module_issuer.claims["repository"],
        )
        yield bao


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def fake_gcp(module_issuer: FakeOidcIssuer) -> Iterator[FakeGcp]:
    with FakeGcp(module_issuer) as fake:
        yield fake
        assert fake.violations == [], "the provider broke the documented request shape"


@pytest.fixture
def fake_azure(module_issuer: FakeOidcIssuer) -> Iterator[FakeAzure]:
    with FakeAzure(module_issuer) as fake:
        yield fake
        assert fake.violations == [], "the provider broke the documented request shape"


def exchange_request(
    issuer: FakeOidcIssuer, provider: str, audiences: list[str] | None = None, **inputs: str
) -> ExchangeRequest:
    """An ExchangeRequest as the action builds it, from `input_name=value` pairs."""
    env = {"INPUT_PROVIDER": provider}
    env.update({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    reader = InputReader(env)

    def id_token(audience: str) -> str:
        if audiences is not None:
            audiences.append(audience)
        return issuer.mint(audience=audience)

    return ExchangeRequest(
        inputs=read_exchange_inputs(reader),
        provider_inputs=reader,
        id_token=id_token,
        deadline=Deadline(20),
    )


def revoke_request(
    issuer: FakeOidcIssuer, state: dict[str, str], token: str | None = None, **inputs: str
) -> RevokeRequest:
    reader = InputReader({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    return RevokeRequest(
        token=token,
        token_id=None,
        state=state,
        broker_url=None,
        audience=None,
        provider_inputs=reader,
        id_token=lambda audience: issuer.mint(audience=audience),
        deadline=Deadline(20),
    )
