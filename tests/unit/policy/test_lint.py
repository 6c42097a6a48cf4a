"""Warnings about valid policies that grant more than their authors likely meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobtoken.policy.lint import broad_grants
from jobtoken.policy.schema import load_org_policy, load_policy_file, load_repository_policy

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "policies"

HEAD = """\
version: 1
repository: octo-org/app
repository_id: "123456789"
connectors:
  hubspot:
    - scopes: [contacts.read]
      max_ttl: 15m
"""


def warnings_for(when: str, max_ttl: str = "15m") -> list[str]:
    text = HEAD.replace("max_ttl: 15m", f"max_ttl: {max_ttl}") + when
    return [str(w) for w in broad_grants(load_repository_policy(text, "p.yml"))]


def test_the_examples_draw_no_warning() -> None:
    for name in ("repository.yml", "organization.yml"):
        assert broad_grants(load_policy_file(EXAMPLES / name)) == []


def test_a_rule_without_conditions_is_named() -> None:
    assert warnings_for("") == [
        "p.yml:6: connectors.hubspot[0] has no conditions (no 'when'): any job of "
        "octo-org/app, on any branch and any event, gets contacts.read"
    ]


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ('      when: {event_name: "*"}\n', "event_name: '*' matches every event"),
        ('      when: {actor: "*"}\n', "'*' matches any actor"),
        ('      when: {ref: "*/*/*"}\n', "'*/*/*' matches any ref"),
        ('      when: {ref: "refs/*"}\n', "'refs/*' is a wildcard ref that matches no branch"),
        ('      when: {ref: "refs/*/main"}\n', "'refs/*/main' matches any kind of ref"),
        ('      when: {base_ref: "refs/heads/*"}\n', "'refs/heads/*' matches every branch"),
        ('      when: {ref: "refs/tags/*"}\n', "'refs/tags/*' matches every tag"),
    ],
)  # fmt: skip
def test_over_broad_patterns_are_warned(when: str, expected: str) -> None:
    found = warnings_for(when)
    assert len(found) == 1
    assert found[0].startswith("p.yml:8: connectors.hubspot[0].when.")
    assert expected in found[0]


@pytest.mark.parametrize(
    "when",
    [
        "      when:\n        ref: refs/heads/release-*\n",
        "      when:\n        ref: refs/heads/*\n        ref_protected: 'true'\n",
        "      when:\n        job_workflow_ref: o/app/.github/workflows/*.yml@refs/heads/main\n",
        "      when:\n        event_name: [push, schedule]\n",
    ],
)
def test_narrow_patterns_are_not_warned(when: str) -> None:
    assert warnings_for(when) == []


def test_a_max_ttl_above_an_hour_is_warned_in_both_kinds_of_policy() -> None:
    found = warnings_for("      when:\n        event_name: push\n", max_ttl="2h")
    assert found == [
        "p.yml:6: connectors.hubspot[0].max_ttl is 7200 s, above 3600 s (1 h): a leaked token "
        "stays usable that long; most jobs need 15m"
    ]
    assert warnings_for("      when:\n        event_name: push\n", max_ttl="1h") == []
    org = load_org_policy(
        'version: 1\norganization: o\norganization_id: "1"\nconnectors:\n'
        "  hubspot:\n    scopes: [a]\n    max_ttl: 3601\n",
        "org.yml",
    )
    assert [w.line for w in broad_grants(org)] == [6]
