"""docs/policy-cookbook.md: each recipe loads, passes `policy check`'s linter without an
error, and grants and denies what its comments say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobtoken.policy.evaluate import evaluate
from jobtoken.policy.schema import RepositoryPolicy, check_policy_text

COOKBOOK = Path(__file__).parents[3] / "docs" / "policy-cookbook.md"
BASE = {
    "iss": "https://token.actions.githubusercontent.com",
    "repository": "octo-org/octo-repo",
    "repository_id": "690001234",
    "repository_owner_id": "9919",
    "ref": "refs/heads/main",
    "ref_type": "branch",
    "event_name": "push",
    "workflow_ref": "octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main",
    "job_workflow_ref": "octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main",
}
RELEASE = "octo-org/octo-repo/.github/workflows/release.yml@refs/tags/v1.2.0"
CENTRAL = "octo-org/workflows/.github/workflows/deploy.yml@refs/heads/main"
#: recipe -> (connector, scopes, claims over BASE, allowed?, the granting rule or None)
CASES = {
    "per-environment": [
        ("hubspot", ["crm.objects.contacts.write"], {"environment": "production"}, True,
         "production-writes"),
        ("hubspot", ["crm.objects.contacts.read"], {}, True, "main-reads"),
        ("hubspot", ["crm.objects.contacts.write"], {}, False, None),
    ],
    "release-only": [
        ("registry", ["packages.publish"],
         {"ref": "refs/tags/v1.2.0", "ref_type": "tag", "ref_protected": "true",
          "workflow_ref": RELEASE}, True, "publish-on-release"),
        ("registry", ["packages.publish"],
         {"ref_protected": "true", "workflow_ref": RELEASE}, False, None),
        ("registry", ["packages.publish"],
         {"ref": "refs/tags/v1.2.0", "ref_type": "tag", "ref_protected": "false",
          "workflow_ref": RELEASE}, False, None),
    ],
    "reusable-workflow": [
        ("deploy-api", ["deploy.write"], {"job_workflow_ref": CENTRAL}, True, "central-deploy"),
        ("deploy-api", ["deploy.write"],
         {"job_workflow_ref": "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main"},
         False, None),
    ],
    "scheduled": [
        ("hubspot", ["crm.objects.contacts.read"], {"event_name": "schedule"}, True,
         "nightly-sync"),
        ("hubspot", ["crm.objects.contacts.read"], {"event_name": "pull_request"}, False, None),
    ],
}  # fmt: skip


def recipes() -> dict[str, str]:
    text = COOKBOOK.read_text()
    blocks = re.findall(r"```yaml\n(# recipe: ([a-z-]+)\n.*?)```", text, re.S)
    return {name: body for body, name in blocks}


class _One:
    def __init__(self, policy: RepositoryPolicy) -> None:
        self._policy = policy

    def policy_for(self, repository: str, repository_id: str) -> RepositoryPolicy:
        return self._policy


def test_the_cookbook_has_exactly_the_recipes_this_test_checks() -> None:
    assert sorted(recipes()) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_recipe_loads_and_decides_as_its_comments_say(name: str) -> None:
    checked = check_policy_text(recipes()[name], f"{name}.yml")
    assert checked.errors == ()
    assert isinstance(checked.policy, RepositoryPolicy)
    for connector, scopes, claims, allowed, rule in CASES[name]:
        decision = evaluate(_One(checked.policy), None, {**BASE, **claims}, connector, scopes)
        assert decision.allowed is allowed, (name, claims, decision.description)
        if allowed:
            assert decision.rule is not None
            assert f"'{rule}'" in decision.rule
