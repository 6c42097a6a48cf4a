"""Fixtures every test directory may use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobtoken.testing.oidc_issuer import FakeOidcIssuer


@pytest.fixture
def oidc_issuer() -> Iterator[FakeOidcIssuer]:
    """A started fake runner OIDC issuer on loopback, fresh for each test."""
    with FakeOidcIssuer() as issuer:
        yield issuer
