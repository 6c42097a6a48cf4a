"""The adversarial suite: one parametrized case per attack, each asserting its exact
outcome. At the end of the session it prints how many of its cases were tried and
how many passed (a case marked ``xfail`` is a known bug: it counts as tried, not passed).

Fixtures: ``app`` — the broker's real ASGI app over a real config and SQLite store
(``support.broker_app``), module-wide, whose policy also has an environment-bound
rule for the ``vault`` connector; ``broker`` — a real ``jobtoken broker serve``
process on loopback, module-wide, for attacks below what an HTTP client library sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from support.broker_app import in_process_broker
from support.broker_process import BrokerProcess, running_broker
from support.contacts_api import ContactsApi
from support.oidc_issuer import FakeOidcIssuer

HERE = Path(__file__).resolve().parent

#: the vault rule of the test policy, bound to the production environment
ENVIRONMENT_RULE = """\
  vault:
    - scopes: [ftp.read]
      max_ttl: 5m
      when:
        environment: production
"""


@dataclass
class _Tally:
    tried: set[str] = field(default_factory=set)
    passed: set[str] = field(default_factory=set)
    known_bugs: set[str] = field(default_factory=set)


_TALLY = _Tally()


def _ours(nodeid: str, fspath: str) -> bool:
    return Path(fspath).resolve().is_relative_to(HERE) and "::" in nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _ours(report.nodeid, str(report.fspath)):
        return
    _TALLY.tried.add(report.nodeid)
    if report.when == "call" and report.passed and not hasattr(report, "wasxfail"):
        _TALLY.passed.add(report.nodeid)
    if hasattr(report, "wasxfail") and report.skipped:
        _TALLY.known_bugs.add(report.nodeid)
    if report.failed:
        _TALLY.passed.discard(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _TALLY.tried:
        return
    passed = len(_TALLY.passed - _TALLY.known_bugs)
    line = f"adversarial: {len(_TALLY.tried)} cases tried, {passed} passed"
    if _TALLY.known_bugs:
        line += f", {len(_TALLY.known_bugs)} known bugs (xfail)"
    terminalreporter.write_line(line)


@dataclass
class App:
    """The in-process broker: its work directory, upstream and client."""

    process: BrokerProcess
    contacts: ContactsApi
    client: TestClient

    def __repr__(self) -> str:
        return "App(broker app, real SQLite store)"  # no secret in a failure report


def _environment_policy(process: BrokerProcess) -> None:
    text = process.policy_path.read_text()
    start = text.index("  vault:\n")
    process.policy_path.write_text(text[:start] + ENVIRONMENT_RULE)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    workdir = tmp_path_factory.mktemp("adversarial-app")
    with in_process_broker(workdir, _environment_policy) as (process, contacts, client):
        yield App(process, contacts, client)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    with (
        FakeOidcIssuer() as issuer,
        ContactsApi() as contacts,
        running_broker(tmp_path_factory.mktemp("adversarial-broker"), issuer, contacts) as process,
    ):
        yield process
