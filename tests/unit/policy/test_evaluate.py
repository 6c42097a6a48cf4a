"""The policy decision: which job gets which scopes, and the reasons it gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobtoken.policy import (
    DirectoryPolicySource,
    PolicyError,
    PolicySourceError,
    RepositoryPolicy,
    evaluate,
    load_org_policy,
    load_repository_policy,
)

POLICY = """\
version: 1
repository: octo-org/app
repository_id: "690001234"
connectors:
  hubspot:
    - name: deploy
      scopes: [contacts.read, contacts.write]
      max_ttl: 10m
      when:
        ref: refs/heads/main
        environment: production
        job_workflow_ref: "octo-org/app/.github/workflows/*.yml@refs/heads/main"
    - name: read
      scopes: [contacts.read]
      max_ttl: 5m
      when:
        event_name: [push, schedule, "*"]
  slack:
    - name: pr-comments
      scopes: [chat:write]
      max_ttl: 1h
      when:
        event_name: [pull_request_target, workflow_run]
"""

ORG = """\
version: 1
organization: octo-org
organization_id: "90001234"
connectors:
  hubspot:
    scopes: [contacts.read, contacts.write]
    max_ttl: 8m
  slack:
    scopes: [chat:write]
    max_ttl: 2m
    when:
      runner_environment: github-hosted
"""

CLAIMS: dict[str, Any] = {
    "repository": "octo-org/app",
    "repository_id": "690001234",
    "repository_owner": "octo-org",
    "repository_owner_id": "90001234",
    "ref": "refs/heads/main",
    "event_name": "push",
    "environment": "production",
    "job_workflow_ref": "octo-org/app/.github/workflows/deploy.yml@refs/heads/main",
    "runner_environment": "github-hosted",
}


class StaticSource:
    """A policy source answering from memory, or failing as told."""

    def __init__(self, text: str | None = POLICY, error: Exception | None = None) -> None:
        self.text = text
        self.error = error
        self.asked: list[tuple[str, str]] = []

    def policy_for(self, repository: str, repository_id: str) -> RepositoryPolicy | None:
        self.asked.append((repository, repository_id))
        if self.error is not None:
            raise self.error
        return None if self.text is None else load_repository_policy(self.text, "jobtoken.yml")

    def where(self, repository: str) -> str:
        return ".github/jobtoken.yml on the default branch"


def decide(
    claims: dict[str, Any] | None = None,
    connector: str = "hubspot",
    scopes: tuple[str, ...] = ("contacts.read",),
    ttl: int | None = None,
    source: Any = None,
    org: str | None = None,
) -> Any:
    return evaluate(
        source or StaticSource(),
        load_org_policy(org, "org.yml") if org else None,
        {**CLAIMS, **(claims or {})},
        connector,
        scopes,
        ttl,
    )


def test_first_matching_rule_grants_with_the_shortest_ttl() -> None:
    decision = decide(scopes=("contacts.write", "contacts.read"), ttl=3600)
    assert decision.allowed
    assert decision.reason == "allowed"
    assert decision.scopes == ("contacts.write", "contacts.read")
    assert decision.max_ttl == 600
    assert decision.rule == "connectors.hubspot[0] 'deploy' (jobtoken.yml line 6)"
    assert decision.oauth_error is None
    assert decide(ttl=120).max_ttl == 120


def test_a_later_rule_grants_when_an_earlier_one_does_not_apply() -> None:
    decision = decide(claims={"ref": "refs/heads/dev"})
    assert decision.allowed
    assert decision.max_ttl == 300
    assert decision.rule is not None
    assert "'read'" in decision.rule
    assert decision.trace[0].endswith("not applicable, needs ref 'refs/heads/main' (line 10)")


def test_requested_scope_outside_every_applicable_rule_is_named() -> None:
    decision = decide(claims={"ref": "refs/heads/dev"}, scopes=("contacts.read", "contacts.write"))
    assert not decision.allowed
    assert decision.reason == "scope_not_allowed"
    assert decision.oauth_error == "invalid_scope"
    assert "'contacts.write'" in decision.description


def test_name_match_with_a_different_repository_id_is_denied() -> None:
    decision = decide(claims={"repository_id": "690009999"})
    assert (decision.allowed, decision.reason) == (False, "repository_mismatch")
    assert "690001234" not in decision.description
    assert "690009999" not in decision.description


def test_id_match_with_a_different_name_is_denied() -> None:
    renamed = {"repository": "octo-org/renamed"}
    assert decide(claims=renamed).reason == "repository_mismatch"
    assert decide(claims={"repository": "OCTO-ORG/App"}).allowed, "names compare like GitHub's"


def test_pull_request_target_on_main_is_denied_unless_a_rule_names_it() -> None:
    event = {"event_name": "pull_request_target", "environment": None}
    claims = {k: v for k, v in {**CLAIMS, **event}.items() if v is not None}
    decision = evaluate(StaticSource(), None, claims, "hubspot", ["contacts.read"])
    assert (decision.allowed, decision.reason) == (False, "conditions_not_met")
    assert "pull_request_target" in decision.description
    assert '"*"' in POLICY, "the 'read' rule's event_name pattern matches every event"
    allowed = decide(claims=event, connector="slack", scopes=("chat:write",))
    assert allowed.allowed


def test_workflow_run_is_gated_like_pull_request_target() -> None:
    decision = decide(claims={"event_name": "workflow_run", "ref": "refs/heads/dev"})
    assert decision.reason == "conditions_not_met"
    slack = decide(claims={"event_name": "workflow_run"}, connector="slack", scopes=("chat:write",))
    assert slack.allowed


def test_job_workflow_ref_from_another_owner_is_denied() -> None:
    evil = "evil-org/app/.github/workflows/deploy.yml@refs/heads/main"
    decision = decide(claims={"job_workflow_ref": evil}, scopes=("contacts.write",))
    assert (decision.allowed, decision.reason) == (False, "scope_not_allowed")
    assert "needs job_workflow_ref" in decision.trace[0]
    nested = "octo-org/app/.github/workflows/x/deploy.yml@refs/heads/main"
    assert not decide(claims={"job_workflow_ref": nested}, scopes=("contacts.write",)).allowed


def test_required_environment_absent_is_denied() -> None:
    claims = {k: v for k, v in CLAIMS.items() if k != "environment"}
    decision = evaluate(StaticSource(), None, claims, "hubspot", ["contacts.write"])
    assert (decision.allowed, decision.reason) == (False, "scope_not_allowed")
    assert decision.trace[0].endswith(
        "needs environment 'production' (line 11), but the claim environment is missing"
    )
    staging = decide(claims={"environment": "staging"}, scopes=("contacts.write",))
    assert not staging.allowed
    assert "missing" not in staging.trace[0], "a claim with another value is not missing"


def test_a_cap_condition_failing_on_a_missing_claim_says_so() -> None:
    claims = {k: v for k, v in CLAIMS.items() if k != "runner_environment"}
    org = load_org_policy(ORG, "org.yml")
    decision = evaluate(StaticSource(), org, claims, "slack", ["chat:write"])
    assert decision.reason == "org_conditions_not_met"
    assert decision.description.endswith(", but the claim runner_environment is missing")


def test_connector_without_rules_is_an_invalid_target() -> None:
    decision = decide(connector="salesforce")
    assert (decision.reason, decision.oauth_error) == ("connector_not_allowed", "invalid_target")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (PolicySourceError("the GitHub API answered HTTP 503"), "policy_unavailable"),
        (PolicyError("jobtoken.yml", 3, "unknown key 'x'"), "policy_invalid"),
    ],
)
def test_source_failures_deny(error: Exception, reason: str) -> None:
    decision = decide(source=StaticSource(error=error))
    assert (decision.allowed, decision.reason) == (False, reason)
    assert decision.oauth_error == "unauthorized_client"
    assert str(error) in decision.description


def test_no_policy_denies_and_says_where_to_add_one() -> None:
    decision = decide(source=StaticSource(text=None))
    assert (decision.allowed, decision.reason) == (False, "no_policy")
    assert ".github/jobtoken.yml on the default branch" in decision.description


def test_other_repositories_policies_are_never_revealed(tmp_path: Path) -> None:
    (tmp_path / "octo-org").mkdir()
    (tmp_path / "octo-org" / "app.yml").write_text(POLICY)
    source = DirectoryPolicySource(tmp_path)
    claims = {"repository": "octo-org/other", "repository_id": "5"}
    for connector in ("hubspot", "slack"):
        decision = decide(claims=claims, connector=connector, source=source)
        assert decision.reason == "no_policy"
        for secret in ("app", "contacts", "deploy", "690001234", "production"):
            assert secret not in decision.description
            assert not any(secret in line for line in decision.trace)


@pytest.mark.parametrize(
    ("scopes", "ttl", "reason"),
    [((), None, "invalid_request"), (("contacts.read",), 0, "invalid_request")],
)
def test_malformed_requests_are_denied(
    scopes: tuple[str, ...], ttl: int | None, reason: str
) -> None:
    source = StaticSource()
    assert decide(scopes=scopes, ttl=ttl, source=source).reason == reason
    assert source.asked == [], "nothing is fetched for a malformed request"


def test_claims_without_identity_are_denied() -> None:
    decision = evaluate(StaticSource(), None, {"repository": "octo-org/app"}, "hubspot", ["x"])
    assert (decision.reason, decision.oauth_error) == ("invalid_claims", "invalid_grant")


def test_org_cap_limits_ttl_and_scopes() -> None:
    capped = decide(scopes=("contacts.write",), ttl=3600, org=ORG)
    assert (capped.allowed, capped.max_ttl) == (True, 480)
    org = ORG.replace("[contacts.read, contacts.write]", "[contacts.read]")
    denied = decide(scopes=("contacts.write",), org=org)
    assert (denied.reason, denied.oauth_error) == ("org_scope_not_allowed", "invalid_scope")
    assert "'contacts.write'" in denied.description


def test_org_cap_conditions_and_connectors() -> None:
    slack = {"event_name": "pull_request_target", "runner_environment": "self-hosted"}
    decision = decide(claims=slack, connector="slack", scopes=("chat:write",), org=ORG)
    assert decision.reason == "org_conditions_not_met"
    assert "runner_environment" in decision.description
    org = ORG.split("  slack:")[0]
    source = StaticSource()
    missing = decide(connector="slack", scopes=("chat:write",), org=org, source=source)
    assert (missing.reason, missing.oauth_error) == ("org_connector_not_allowed", "invalid_target")
    assert source.asked == [], "the repository policy is not fetched for a capped connector"


def test_org_policy_of_another_organization_denies() -> None:
    decision = decide(claims={"repository_owner_id": "1"}, org=ORG)
    assert (decision.allowed, decision.reason) == (False, "organization_mismatch")
    assert "90001234" not in decision.description
