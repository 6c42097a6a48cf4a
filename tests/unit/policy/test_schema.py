"""Policy files: the strict schema, with errors that name the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobtoken.policy.errors import PolicyError
from jobtoken.policy.schema import (
    OrgPolicy,
    RepositoryPolicy,
    check_policy_file,
    check_policy_text,
    load_org_policy,
    load_policy_file,
    load_repository_policy,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "policies"

VALID = """\
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
    - scopes: [contacts.read]
      max_ttl: 300
"""

ORG = """\
version: 1
organization: octo-org
organization_id: "9919"
connectors:
  hubspot:
    scopes: [contacts.read]
    max_ttl: 1h
    when:
      runner_environment: github-hosted
"""


def refused(text: str, match: str, *, org: bool = False) -> PolicyError:
    load = load_org_policy if org else load_repository_policy
    with pytest.raises(PolicyError, match=match) as caught:
        load(text, "jobtoken.yml")
    return caught.value


def test_valid_repository_policy_loads_into_typed_rules() -> None:
    policy = load_repository_policy(VALID, "jobtoken.yml")
    assert (policy.repository, policy.repository_id) == ("octo-org/app", "123456789")
    first, second = policy.connectors["hubspot"]
    assert first.name == "sync"
    assert first.scopes == {"contacts.read", "contacts.write"}
    assert first.max_ttl == 900
    assert [(c.claim, c.values, c.line) for c in first.conditions] == [
        ("ref", ("refs/heads/main",), 10),
        ("event_name", ("push", "schedule"), 11),
    ]
    assert first.label == "connectors.hubspot[0] 'sync' (jobtoken.yml line 6)"
    assert (second.name, second.max_ttl, second.conditions) == (None, 300, ())


def test_valid_org_policy_loads() -> None:
    org = load_org_policy(ORG, "org.yml")
    assert (org.organization, org.organization_id) == ("octo-org", "9919")
    cap = org.connectors["hubspot"]
    assert (cap.scopes, cap.max_ttl) == ({"contacts.read"}, 3600)
    assert cap.conditions[0].claim == "runner_environment"


def test_example_policies_are_valid() -> None:
    repository = load_policy_file(EXAMPLES / "repository.yml")
    organization = load_policy_file(EXAMPLES / "organization.yml")
    assert isinstance(repository, RepositoryPolicy)
    assert isinstance(organization, OrgPolicy)
    assert set(repository.connectors) <= set(organization.connectors)


@pytest.mark.parametrize(
    ("text", "match", "line"),
    [
        (VALID + "extra: 1\n", "unknown key 'extra' in the policy", 14),
        (VALID.replace("      max_ttl: 300", "      max_ttl: 300\n      scope: [x]"),
         r"unknown key 'scope' in connectors.hubspot\[1\]", 14),
        (VALID.replace("        ref: refs", "        branch: refs"), "unknown claim 'branch'", 10),
        (VALID.replace("        ref: refs", "        repository_id: refs"), "unknown claim", 10),
        (VALID.replace("version: 1", "version: 2"), "version must be 1", 1),
        (VALID.replace("version: 1", 'version: "1"'), "version must be 1", 1),
        (VALID.replace('"123456789"', "123456789"), r'quoted string of digits, e\.g\. "1234', 3),
        (VALID.replace('"123456789"', '"0123"'), "digits without a leading zero", 3),
        (VALID.replace('"123456789"', "0123"), "digits without a leading zero", 3),
        (VALID.replace("octo-org/app", "octo-org"), "owner/name", 2),
        (VALID.replace("octo-org/app", "[octo-org/app]"), "must be a string", 2),
        (VALID.replace("max_ttl: 15m", "max_ttl: 15 minutes"), "duration like", 8),
        (VALID.replace("max_ttl: 15m", "max_ttl: 25h"), "between 1 s and 86400 s", 8),
        (VALID.replace("max_ttl: 15m", "max_ttl: 0"), "between", 8),
        (VALID.replace("max_ttl: 15m", "max_ttl: -5"), "between", 8),
        # a YAML int of more than 4,300 digits: int() would raise ValueError
        (VALID.replace("max_ttl: 15m", "max_ttl: " + "1" * 5000), "between 1 s and 86400 s", 8),
        (VALID.replace("max_ttl: 15m", "max_ttl: 100000"), "between 1 s and 86400 s", 8),
        # YAML 1.1 integer forms are strings here, and no duration
        (VALID.replace("max_ttl: 15m", "max_ttl: 0x384"), "duration like", 8),
        (VALID.replace("max_ttl: 15m", "max_ttl: 1_000"), "duration like", 8),
        (VALID.replace("max_ttl: 15m", "max_ttl: +900"), "duration like", 8),
        (VALID.replace("max_ttl: 15m", "max_ttl: 0o1604"), "duration like", 8),
        (VALID.replace("max_ttl: 15m", "max_ttl: 15:00"), "duration like", 8),
        (VALID.replace("max_ttl: 15m", "max_ttl: \"\u00b2\""), "duration like", 8),
        (VALID.replace("max_ttl: 15m", "max_ttl: \"\u0669\u0660\u0660\""), "duration like", 8),
        (VALID.replace("[contacts.read, contacts.write]", "[]"), "1 to 100 items", 7),
        (VALID.replace("[contacts.read, contacts.write]", "contacts.read"), "must be a list", 7),
        (VALID.replace("[contacts.read, contacts.write]", '["a b"]'), "RFC 6749", 7),
        (VALID.replace("[contacts.read, contacts.write]", "[true]"), "must be a string", 7),
        (VALID.replace("refs/heads/main", "true"), "must be a string", 10),
        (VALID.replace("refs/heads/main", "42"), "must be a string", 10),
        (VALID.replace("refs/heads/main", '"refs/**"'), r"'\*\*' is not a pattern", 10),
        (VALID.replace("refs/heads/main", "[]"), "1 to 100 items", 10),
        (VALID.replace("  hubspot:", "  HubSpot!:"), "connector name", 5),
        (VALID.replace("  hubspot:\n", "  hubspot: {}\n  x:\n"), "must be a list", 5),
        (VALID + "version: 1\n", "repeats the key 'version'", 14),
        (VALID.replace("event_name: [push, schedule]", "event_name: push\n        ref: x"),
         "repeats the key 'ref'", 12),
        ("- a\n- b\n", "the policy must be a mapping", 1),
        ("version: 1\n", "needs the key 'connectors'", 1),
        (VALID.replace("connectors:\n", "connectors: {}\nx:\n"), "unknown key 'x'", 5),
        (VALID.replace("    - name: sync", "    - name: \"bad\\u0007name\""), "printable", 6),
    ],
)  # fmt: skip
def test_invalid_repository_policies_name_the_problem_and_line(
    text: str, match: str, line: int
) -> None:
    assert refused(text, match).line == line


def test_on_key_is_not_coerced_to_a_boolean() -> None:
    text = VALID.replace("      when:\n", "      when:\n        on: push\n")
    assert "unknown claim 'on'" in refused(text, "unknown claim").message


def test_environment_no_is_the_string_no() -> None:
    text = VALID.replace("        ref: refs/heads/main", "        environment: no")
    policy = load_repository_policy(text, "jobtoken.yml")
    assert policy.connectors["hubspot"][0].conditions[0].values == ("no",)


def test_org_policy_schema_is_strict() -> None:
    assert refused(ORG + "repository: x\n", "unknown key 'repository'", org=True).line == 10
    assert (
        refused(ORG.replace("    max_ttl: 1h\n", ""), "needs the key 'max_ttl'", org=True).line == 6
    )
    assert refused(ORG.replace('"9919"', "9919"), "quoted", org=True).line == 3
    assert refused(ORG.replace("    scopes:", "    rules: []\n    scopes:"), "unknown", org=True)


def test_load_policy_file_detects_the_kind_and_reports_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "repo.yml").write_text(VALID)
    (tmp_path / "org.yml").write_text(ORG)
    assert isinstance(load_policy_file(tmp_path / "repo.yml"), RepositoryPolicy)
    assert isinstance(load_policy_file(tmp_path / "org.yml"), OrgPolicy)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy_file(tmp_path / "missing.yml")
    (tmp_path / "huge.yml").write_text("# " + "x" * (1024 * 1024))
    with pytest.raises(PolicyError, match="larger than"):
        load_policy_file(tmp_path / "huge.yml")


MANY_MISTAKES = """\
version: 2
repository: octo-org/app
repository_id: 123
extra: 1
connectors:
  hubspot:
    - scopes: [contacts.read, "two words"]
      max_ttl: 0
      when:
        bogus: x
        ref: "refs/**"
    - scopes: []
  slack:
    - scopes: [chat:write]
      max_ttl: 5m
      when: {event_name: push}
"""


def test_check_gathers_every_error_of_a_file_with_its_line() -> None:
    checked = check_policy_text(MANY_MISTAKES, "jobtoken.yml")
    assert checked.policy is None
    found = [(error.line, error.message.split(" (")[0]) for error in checked.errors]
    assert sorted(found) == [
        (1, "version must be 1"),
        (3, 'repository_id must be a quoted string of digits, e.g. "123"'),
        (4, "unknown key 'extra' in the policy"),
        (7, "connectors.hubspot[0].scopes must be 1 to 128 printable ASCII characters except "
            'space, " and \\'),
        (8, "connectors.hubspot[0].max_ttl must be between 1 s and 86400 s"),
        (10, "unknown claim 'bogus' in connectors.hubspot[0].when"),
        (11, "connectors.hubspot[0].when.ref: '**' is not a pattern here: '*' never crosses "
             "'/' or ':'"),
        (12, "connectors.hubspot[1] needs the key 'max_ttl'"),
        (12, "connectors.hubspot[1].scopes must hold 1 to 100 items"),
    ]  # fmt: skip
    assert all(error.source == "jobtoken.yml" for error in checked.errors)


def test_loading_raises_the_first_error_check_gathers(tmp_path: Path) -> None:
    """The broker's loaders still stop at one error: the first a walk of the file meets."""
    checked = check_policy_text(MANY_MISTAKES, "jobtoken.yml")
    with pytest.raises(PolicyError) as caught:
        load_repository_policy(MANY_MISTAKES, "jobtoken.yml")
    assert (
        str(caught.value)
        == str(checked.errors[0])
        == "jobtoken.yml:4: unknown key "
        + ("'extra' in the policy (known: connectors, repository, repository_id, version)")
    )
    path = tmp_path / "jobtoken.yml"
    path.write_text(MANY_MISTAKES)
    with pytest.raises(PolicyError, match="unknown key 'extra'"):
        load_policy_file(path)
    assert check_policy_file(path).errors[0].message == checked.errors[0].message


def test_check_of_a_valid_file_has_the_policy_and_no_errors(tmp_path: Path) -> None:
    path = tmp_path / "org.yml"
    path.write_text(ORG)
    checked = check_policy_file(path)
    assert checked.errors == ()
    assert isinstance(checked.policy, OrgPolicy)
    assert (
        check_policy_file(tmp_path / "absent.yml")
        .errors[0]
        .message.startswith("cannot read the file")
    )


def test_check_gathers_errors_of_an_organization_policy() -> None:
    text = ORG.replace("max_ttl: 1h", "max_ttl: 0").replace(
        "runner_environment: github-hosted", "runner: x"
    )
    checked = check_policy_text(text, "org.yml")
    assert [e.line for e in checked.errors] == [7, 9]
