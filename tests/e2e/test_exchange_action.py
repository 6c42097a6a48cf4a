"""The exchange action end to end: real workflows with act, a fake RFC 8693 broker on loopback."""

from __future__ import annotations

import hashlib
import re
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
      - id: hubspot
        uses: owner/jobtoken@v1
        with:
          broker-url: ${{ env.BROKER_URL }}
          connector: hubspot
          scopes: crm.objects.contacts.read crm.lists.read
          ttl: 15m
          timeout: 10s
      - id: use
        shell: bash
        env: { HUBSPOT_TOKEN: "${{ steps.hubspot.outputs.token }}" }
        run: |
          echo "the token is $HUBSPOT_TOKEN"
          echo "sha256=$(printf %s "$HUBSPOT_TOKEN" | sha256sum | cut -c1-64)" >> "$GITHUB_OUTPUT"
      - id: after
        if: always()
        shell: bash
        run: |
          echo "::add-mask::later-canary-value"
          echo "later step says later-canary-value and injected-canary-word"
      - id: revoke
        if: always()
        uses: owner/jobtoken/revoke@v1
        with:
          broker-url: ${{ env.BROKER_URL }}
          token: ${{ steps.hubspot.outputs.token }}
"""


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    with FakeBroker() as fake:
        yield fake


def secrets_of(broker: FakeBroker, issuer: FakeOidcIssuer) -> list[str]:
    return [*broker.issued, *issuer.issued, issuer.request_token]


@pytest.mark.parametrize("step_debug", [False, True], ids=["plain", "step-debug"])
def test_a_later_step_uses_the_token_and_the_log_shows_only_stars(
    run_act: RunAct, oidc_issuer: FakeOidcIssuer, broker: FakeBroker, step_debug: bool
) -> None:
    run = run_act(
        WORKFLOW, issuer=oidc_issuer, env={"BROKER_URL": broker.url}, step_debug=step_debug
    )

    assert run.returncode == 0, run.log
    assert run.steps["hubspot"].outcome == "success"
    assert len(broker.issued) == 1
    token = broker.issued[0]
    # the later step received exactly the issued token, and printed it masked
    assert run.steps["use"].outputs["sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert "the token is ***" in run.log
    outputs = run.steps["hubspot"].outputs
    assert outputs["token"] == token
    assert outputs["token-id"].startswith("tok_")
    assert outputs["scopes"] == "crm.objects.contacts.read crm.lists.read"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", outputs["expires-at"])
    # what the broker was asked
    (exchange,) = broker.requests_to("/token")
    assert exchange.form["resource"] == "hubspot"
    assert exchange.form["ttl"] == "900"
    assert exchange.form["subject_token"] == oidc_issuer.issued[0]
    # the revoke action revoked it
    assert broker.revoked == [token]
    assert_no_leak(run.log, secrets_of(broker, oidc_issuer))


FAIL_CLOSED = {
    "extra scope": (
        {"scope": "crm.objects.contacts.read crm.lists.read crm.admin"},
        "granted scopes that were not requested: 'crm.admin'",
    ),
    "too long lifetime": ({"expires_in": 86400}, "the token lives 86400 s, longer than the 900 s"),
    "missing lifetime": ({"expires_in": None}, "said nothing about when the token expires"),
    "token with a newline": (
        {"access_token": "jbt_first-half-of-token\njbt_second-half-of-token"},
        "the access token contains whitespace",
    ),
    "wrong token type": ({"token_type": "mac"}, "token_type is 'mac'; expected Bearer"),
}


@pytest.mark.parametrize("case", list(FAIL_CLOSED), ids=list(FAIL_CLOSED))
def test_a_bad_token_fails_the_step_writes_no_output_and_is_revoked(
    run_act: RunAct, oidc_issuer: FakeOidcIssuer, broker: FakeBroker, case: str
) -> None:
    overrides, message = FAIL_CLOSED[case]
    broker.override(**overrides)

    run = run_act(WORKFLOW, issuer=oidc_issuer, env={"BROKER_URL": broker.url})

    assert run.returncode != 0
    assert run.steps["hubspot"].outcome == "failure"
    assert run.steps["use"].outcome == "skipped"
    assert not any(run.steps["hubspot"].outputs.values()), run.steps["hubspot"].outputs
    assert message in run.log
    assert "it was revoked and no output was written" in run.log
    assert broker.revoked == broker.issued
    assert len(broker.issued) == 1
    # the revoke action had nothing to revoke: no token output
    assert "nothing to revoke" in run.log
    assert_no_leak(run.log, secrets_of(broker, oidc_issuer))


def test_workflow_commands_in_an_error_body_change_nothing(
    run_act: RunAct, oidc_issuer: FakeOidcIssuer, broker: FakeBroker
) -> None:
    description = (
        "denied ::stop-commands::stoptoken\n::set-output name=token::forged\n"
        "::add-mask::injected-canary-word\r\n##[set-output name=token]forged2 %0A::error::x"
    )
    broker.reply = (400, {"error": "invalid_scope", "error_description": description})

    run = run_act(WORKFLOW, issuer=oidc_issuer, env={"BROKER_URL": broker.url})

    assert run.steps["hubspot"].outcome == "failure"
    assert not any(run.steps["hubspot"].outputs.values())
    # the description is shown, neutralized, with the code and a hint
    assert "invalid_scope: denied : :stop-commands: :stoptoken" in run.log
    assert "Ask for fewer scopes; a connector's scopes are the broker operators' to add" in run.log
    # commands still work after it (no stop-commands took effect) ...
    assert "later step says *** and" in run.log
    # ... and the broker's add-mask did not take effect
    assert "and injected-canary-word" in run.log
    # the claims block helps the author see why no policy matched
    assert "repository: octo-org/octo-repo" in run.log
    assert (
        "job_workflow_ref: octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main" in run.log
    )
    assert_no_leak(run.log, [*oidc_issuer.issued, oidc_issuer.request_token])


def test_a_job_without_id_token_permission_is_told_what_to_add(
    run_act: RunAct, broker: FakeBroker
) -> None:
    run = run_act(WORKFLOW, issuer=None, env={"BROKER_URL": broker.url})

    assert run.steps["hubspot"].outcome == "failure"
    assert "permissions: id-token: write" in run.log
    assert "pull requests from forks and Dependabot runs never get an ID token" in run.log
    assert broker.requests == []


def test_an_invalid_input_is_named_before_any_network_call(
    run_act: RunAct, oidc_issuer: FakeOidcIssuer, broker: FakeBroker
) -> None:
    workflow = WORKFLOW.replace("ttl: 15m", "ttl: 15 minutes")

    run = run_act(workflow, issuer=oidc_issuer, env={"BROKER_URL": broker.url})

    assert run.steps["hubspot"].outcome == "failure"
    assert "input `ttl`: is not a duration" in run.log
    assert broker.requests == []
    assert oidc_issuer.issued == []
