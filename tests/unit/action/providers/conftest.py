"""Loopback fakes for the cloud providers' unit tests (GCP, Azure): each asserts the
documented request shape. The fake issuer is started once per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.fake_azure import FakeAzure
from support.fake_gcp import FakeGcp
from support.oidc_issuer import FakeOidcIssuer


@pytest.fixture(scope="module")
def module_issuer() -> Iterator[FakeOidcIssuer]:
    with FakeOidcIssuer() as issuer:
        yield issuer


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
