"""The revoke action end to end: real workflows with act, a fake RFC 7009 broker on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.fake_broker import FakeBroker
from support.leak_check import assert_no_leak
from support.oidc_issuer import FakeOidcIssuer

from .conftest import RunAct

pytestmark = pytest.mark.e2e

WORKFLOW = r"""
on: push
permissions: { id-token: write, contents: read }
jobs:
  sync:
    runs-on: ubuntu-latest
    steps:
      - id: slack
        uses: owner/jobtoken@v1
        with:
          broker-url: ${{ env.BROKER_URL }}
          connector: slack
          scopes: chat:write
          ttl: 5m
      - id: revoke
        if: always()
        uses: owner/jobtoken/revoke@v1
        with:
          broker-url: ${{ env.BROKER_URL }}
          token: ${{ steps.slack.outputs.token }}
          fail-on-error: ${{ env.FAIL_ON_ERROR }}
      - id: after
        if: always()
        shell: bash
        run: echo "the job went on"
"""


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    with FakeBroker() as fake:
        yield fake


def env(broker: FakeBroker, fail_on_error: bool = False) -> dict[str, str]:
    return {"BROKER_URL": broker.url, "FAIL_ON_ERROR": str(fail_on_error).lower()}


def test_the_revoke_action_revokes_the_token_by_possession(
    run_act: RunAct, oidc_issuer: FakeOidcIssuer, broker: FakeBroker
) -> None:
    run = run_act(WORKFLOW, issuer=oidc_issuer, env=env(broker))

    assert run.returncode == 0, run.log
    assert run.steps["revoke"].outcome == "success"
    (token,) = broker.issued
    (revocation,) = broker.requests_to("/revoke")
    assert revocation.form == {"token": token, "token_type_hint": "access_token"}
    assert revocation.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert broker.revoked == [token]
    assert "jobtoken revoke: revoked the token" in run.log
    assert_no_leak(run.log, [token, *oidc_issuer.issued, oidc_issuer.request_token])


def test_a_failed_revocation_is_a_warning_by_default(
    run_act: RunAct, oidc_issuer: FakeOidcIssuer, broker: FakeBroker
) -> None:
    broker.revoke_status = 400

    run = run_act(WORKFLOW, issuer=oidc_issuer, env=env(broker))

    assert run.returncode == 0, run.log
    assert run.steps["revoke"].outcome == "success"
    assert run.steps["after"].outcome == "success"
    assert "the broker did not revoke the token (HTTP 400): invalid_request" in run.log
    assert "set fail-on-error: true to fail" in run.log
    assert_no_leak(run.log, [*broker.issued, *oidc_issuer.issued])


def test_a_failed_revocation_fails_the_step_with_fail_on_error(
    run_act: RunAct, oidc_issuer: FakeOidcIssuer, broker: FakeBroker
) -> None:
    broker.revoke_status = 400

    run = run_act(WORKFLOW, issuer=oidc_issuer, env=env(broker, fail_on_error=True))

    assert run.returncode != 0
    assert run.steps["revoke"].outcome == "failure"
    assert "the broker did not revoke the token (HTTP 400)" in run.log
    assert_no_leak(run.log, [*broker.issued, *oidc_issuer.issued])


def test_nothing_to_revoke_after_a_failed_exchange_is_a_notice(
    run_act: RunAct, oidc_issuer: FakeOidcIssuer, broker: FakeBroker
) -> None:
    broker.reply = (400, {"error": "invalid_scope", "error_description": "not allowed"})

    run = run_act(WORKFLOW, issuer=oidc_issuer, env=env(broker, fail_on_error=True))

    assert run.steps["slack"].outcome == "failure"
    assert run.steps["revoke"].outcome == "success"
    assert "nothing to revoke" in run.log
    assert broker.requests_to("/revoke") == []
