"""What access a policy change grants or removes."""

from __future__ import annotations

import pytest

from jobtoken.policy.diff import Change, diff_policies
from jobtoken.policy.schema import load_org_policy, load_repository_policy

OLD = """\
version: 1
repository: octo-org/app
repository_id: "123456789"
connectors:
  hubspot:
    - name: sync
      scopes: [contacts.read, contacts.write]
      max_ttl: 15m
      when:
        ref: refs/heads/main
        event_name: [push, schedule]
        runner_environment: github-hosted
    - scopes: [contacts.read]
      max_ttl: 300
      when:
        ref: refs/heads/release-*
"""


def diff(old: str | None, new: str | None) -> list[tuple[str, str, str, str]]:
    before = load_repository_policy(old, "old.yml") if old else None
    after = load_repository_policy(new, "new.yml") if new else None
    return [(c.kind, c.connector, c.rule, c.detail) for c in diff_policies(before, after)]


def test_no_change_is_no_change() -> None:
    reordered = OLD.replace("[push, schedule]", "[schedule, push]")
    assert diff(OLD, reordered) == []


def test_scopes_ttl_and_removed_conditions() -> None:
    new = (
        OLD.replace("[contacts.read, contacts.write]", "[contacts.read, deals.read]")
        .replace("max_ttl: 15m", "max_ttl: 1h")
        .replace("max_ttl: 300", "max_ttl: 60")
        .replace("        runner_environment: github-hosted\n", "")
    )
    assert diff(OLD, new) == [
        ("widened", "hubspot", "'sync'", "now grants the scope deals.read"),
        ("narrowed", "hubspot", "'sync'", "no longer grants contacts.write"),
        ("widened", "hubspot", "'sync'", "max_ttl raised from 900 s to 3600 s"),
        ("widened", "hubspot", "'sync'", "no longer requires runner_environment 'github-hosted'"),
        ("narrowed", "hubspot", "#1", "max_ttl lowered from 300 s to 60 s"),
    ]


@pytest.mark.parametrize(
    ("old_values", "new_values", "kind"),
    [
        ("[push, schedule]", "[push, schedule, workflow_dispatch]", "widened"),
        ("[push, schedule]", "push", "narrowed"),
        ("[push, schedule]", '"*"', "widened"),
        ('"*"', "[push]", "narrowed"),
        ("[push, schedule]", "[push, workflow_dispatch]", "changed"),
        ("pull_request_target", '"*"', "changed"),  # '*' never allows pull_request_target
    ],
)
def test_condition_values(old_values: str, new_values: str, kind: str) -> None:
    old = OLD.replace("[push, schedule]", old_values)
    new = OLD.replace("[push, schedule]", new_values)
    [(found_kind, connector, rule, detail)] = diff(old, new)
    assert (found_kind, connector, rule) == (kind, "hubspot", "'sync'")
    assert detail.startswith("event_name was ")


def test_a_broader_pattern_widens_and_an_unrelated_one_changes() -> None:
    broader = OLD.replace("refs/heads/release-*", '"refs/heads/*"')
    assert diff(OLD, broader) == [
        ("widened", "hubspot", "#1", "ref was 'refs/heads/release-*', now 'refs/heads/*'")
    ]
    other = OLD.replace("refs/heads/release-*", '"refs/heads/hotfix-*"')
    assert diff(OLD, other)[0][0] == "changed"
    assert diff(broader, OLD)[0][0] == "narrowed"


def test_new_and_removed_rules_connectors_and_conditions() -> None:
    new = OLD.replace(
        "        ref: refs/heads/release-*\n",
        "        ref: refs/heads/release-*\n        environment: production\n",
    ) + ("  slack:\n    - name: notify\n      scopes: [chat:write]\n      max_ttl: 5m\n")
    assert diff(OLD, new) == [
        ("narrowed", "hubspot", "#1", "now requires environment 'production'"),
        ("widened", "slack", "", "new connector"),
        ("widened", "slack", "'notify'", "new rule: grants chat:write for at most 300 s "
         "with no conditions"),
    ]  # fmt: skip
    assert diff(new, OLD)[-2:] == [
        ("narrowed", "slack", "", "connector removed: no rule grants it"),
        ("narrowed", "slack", "'notify'", "rule removed: no longer grants chat:write"),
    ]


def test_no_policy_before_means_everything_is_new() -> None:
    kinds = {kind for kind, *_ in diff(None, OLD)}
    assert kinds == {"widened"}
    assert {kind for kind, *_ in diff(OLD, None)} == {"narrowed"}


def test_reordered_rules_and_another_repository_are_reported() -> None:
    first, second = OLD.split("    - scopes: [contacts.read]\n")
    head, sync = first.split("    - name: sync\n")
    swapped = head + "    - scopes: [contacts.read]\n" + second + "    - name: sync\n" + sync
    assert ("changed", "hubspot", "", "the order of the rules changed (the first match wins)") in (
        diff(OLD, swapped)
    )
    moved = OLD.replace('"123456789"', '"987654321"')
    [(kind, connector, _, detail)] = diff(OLD, moved)
    assert (kind, connector) == ("widened", "")
    assert "id 987654321" in detail


def test_organization_caps_and_mixed_kinds() -> None:
    org = 'version: 1\norganization: o\norganization_id: "1"\nconnectors:\n'
    when = "    when: {runner_environment: github-hosted}\n"
    cap = "  hubspot:\n    scopes: [a]\n    max_ttl: 5m\n" + when
    old = load_org_policy(org + cap, "old.yml")
    new = load_org_policy(org + cap.replace("[a]", "[a, b]").replace(when, ""), "new.yml")
    assert [(c.kind, c.rule, c.detail) for c in diff_policies(old, new)] == [
        ("widened", "cap", "now grants the scope b"),
        ("widened", "cap", "no longer requires runner_environment 'github-hosted'"),
    ]
    with pytest.raises(ValueError, match="organization policy"):
        diff_policies(old, load_repository_policy(OLD, "r.yml"))
    assert diff_policies(None, new) == [
        Change("widened", "hubspot", "cap", "new connector: allows a b for at most 300 s "
               "with no conditions", 6)
    ]  # fmt: skip
