"""The actions against the real broker process (the demo covers revoke by token)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from support.broker_process import BrokerProcess, running_broker
from support.contacts_api import ContactsApi
from support.oidc_issuer import FakeOidcIssuer

from .conftest import RunAct

JOB = """
on: push
permissions: { id-token: write }
jobs:
  job:
    runs-on: ubuntu-latest
    steps:
"""
EXCHANGE_STEP = """
      - id: contacts
        uses: owner/jobtoken@v1
        with: { broker-url: "${{ env.BROKER_URL }}", connector: contacts, scopes: contacts.read }
"""
REVOKE_STEP = """
      - id: revoke
        uses: owner/jobtoken/revoke@v1
        with:
          broker-url: ${{ env.BROKER_URL }}
          token-id: %s
          fail-on-error: true
"""
EXCHANGE = JOB + EXCHANGE_STEP
REVOKE_BY_ID = EXCHANGE + REVOKE_STEP % "${{ steps.contacts.outputs.token-id }}"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[FakeOidcIssuer, BrokerProcess]]:
    with (
        FakeOidcIssuer() as issuer,
        ContactsApi() as contacts,
        running_broker(tmp_path, issuer, contacts) as broker,
    ):
        yield issuer, broker


def introspect(broker: BrokerProcess, token: str) -> dict[str, object]:
    answer = requests.post(
        f"{broker.url}/introspect",
        data={"token": token},
        auth=("resource-server", broker.client_secret),
        timeout=10,
    )
    assert answer.status_code == 200
    body: dict[str, object] = answer.json()
    return body


def test_revoke_by_token_id_with_a_fresh_id_token_of_the_same_job(
    run_act: RunAct, stack: tuple[FakeOidcIssuer, BrokerProcess]
) -> None:
    issuer, broker = stack
    run = run_act(REVOKE_BY_ID, issuer=issuer, env={"BROKER_URL": broker.url})

    assert run.steps["contacts"].outcome == "success", run.log
    assert run.steps["revoke"].outcome == "success", run.log
    token = run.steps["contacts"].outputs["token"]
    assert token not in run.log
    # two ID tokens: one for the exchange, a fresh one proving the job to revoke by id
    assert len(issuer.issued) == 2
    assert introspect(broker, token) == {"active": False}


def test_revoke_by_token_id_from_another_run_revokes_nothing(
    run_act: RunAct, stack: tuple[FakeOidcIssuer, BrokerProcess]
) -> None:
    issuer, broker = stack
    first = run_act(EXCHANGE, issuer=issuer, env={"BROKER_URL": broker.url})
    assert first.steps["contacts"].outcome == "success", first.log
    token = first.steps["contacts"].outputs["token"]
    token_id = first.steps["contacts"].outputs["token-id"]
    assert introspect(broker, token)["active"] is True

    issuer.claims["run_id"] = "99999999999"  # a different run of the same repository
    revoke_only = JOB + REVOKE_STEP % token_id
    other = run_act(revoke_only, issuer=issuer, env={"BROKER_URL": broker.url})

    # RFC 7009: the broker answers 200 either way, and the token stays active
    assert other.steps["revoke"].outcome == "success", other.log

    assert introspect(broker, token)["active"] is True


def test_a_ttl_the_policy_caps_draws_a_notice_with_both_lifetimes_naming_the_policy(
    run_act: RunAct, stack: tuple[FakeOidcIssuer, BrokerProcess]
) -> None:
    issuer, broker = stack
    # the action asks for its default ttl, 15m; the policy's rule allows at most 10m
    run = run_act(EXCHANGE, issuer=issuer, env={"BROKER_URL": broker.url})

    assert run.steps["contacts"].outcome == "success", run.log
    assert "ttl capped: requested 15m, granted 10m" in run.log
    # the broker says which limit applied (ttl_limited_by), and the notice names it
    assert "the limit that applied: the repository admins' policy (its rule's max_ttl)" in (run.log)


SHARED_LEASE = (
    JOB
    + """
      - id: vault
        uses: owner/jobtoken@v1
        with: { broker-url: "${{ env.BROKER_URL }}", connector: vault, scopes: ftp.read, ttl: 5m }
      - id: revoke
        uses: owner/jobtoken/revoke@v1
        with:
          broker-url: ${{ env.BROKER_URL }}
          token: ${{ steps.vault.outputs.token }}
          fail-on-error: true
"""
)


def test_revoking_a_shared_credential_by_token_revokes_this_jobs_lease_only(
    run_act: RunAct, stack: tuple[FakeOidcIssuer, BrokerProcess]
) -> None:
    issuer, broker = stack
    other_job = broker.id_token(run_id="99999999998", check_run_id="99999999997")
    others = broker.exchange(resource="vault", scope="ftp.read", subject_token=other_job)
    assert others.status_code == 200, others.text

    run = run_act(SHARED_LEASE, issuer=issuer, env={"BROKER_URL": broker.url})

    assert run.steps["vault"].outcome == "success", run.log
    assert run.steps["revoke"].outcome == "success", run.log
    assert "revoked this job's lease of the connector's shared credential" in run.log
    assert broker.passthrough_credential not in run.log
    # the runner gave two ID tokens: the exchange's, and the revoke's (after possession
    # alone was refused)
    assert len(issuer.issued) == 2
    remaining = introspect(broker, broker.passthrough_credential)
    assert (remaining["active_leases"], remaining["jti"]) == (1, others.json()["token_id"])
