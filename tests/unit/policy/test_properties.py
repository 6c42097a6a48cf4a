"""Properties of the policy parser and the decision, against arbitrary documents and claims.

1. Any bytes, any text and any YAML-ish document either load or raise ``PolicyError``
   (nothing else), and a document that does not load never allows anything.
2. ``evaluate`` never raises, whatever the claims, connector, scopes and lifetime.
3. For generated well-formed policies (repository policy and organization cap),
   ``evaluate`` decides exactly as :func:`oracle`, a direct reading of docs/policy.md
   ("How a request is matched") written without the package's code; an allow grants
   only scopes that the granting rule and the cap both list.

``make test`` runs the bounded hypothesis profile; ``make fuzz`` the long one
(tests/conftest.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from hypothesis import event, example, given
from hypothesis import strategies as st

from jobtoken.policy import (
    PolicyDecision,
    PolicyError,
    RepositoryPolicy,
    evaluate,
    load_org_policy,
    load_repository_policy,
)

REPOSITORY, REPOSITORY_ID, OWNER_ID = "octo-org/app", "690001234", "90001234"
IDENTITY = {
    "repository": REPOSITORY,
    "repository_id": REPOSITORY_ID,
    "repository_owner": "octo-org",
    "repository_owner_id": OWNER_ID,
}
#: the claims docs/policy.md lets a `when` test
WHEN_CLAIMS = [
    "ref",
    "ref_type",
    "ref_protected",
    "environment",
    "event_name",
    "workflow",
    "workflow_ref",
    "workflow_sha",
    "job_workflow_ref",
    "job_workflow_sha",
    "runner_environment",
    "actor",
    "actor_id",
    "sha",
    "head_ref",
    "base_ref",
    "repository_visibility",
    "sub",
    "enterprise",
    "enterprise_id",
]
GATED = ("pull_request_target", "workflow_run")
CONNECTORS = ("hubspot", "slack", "gh-app")


class Source:
    """A policy source answering with one document (loaded on each call, as a file is)."""

    def __init__(self, text: bytes | str) -> None:
        self.text = text

    def policy_for(self, repository: str, repository_id: str) -> RepositoryPolicy | None:
        return load_repository_policy(self.text, "policy.yml")

    def where(self, repository: str) -> str:
        return "memory"


class PolicyObject:
    """A source answering with an already loaded policy."""

    def __init__(self, policy: RepositoryPolicy) -> None:
        self.policy = policy

    def policy_for(self, repository: str, repository_id: str) -> RepositoryPolicy | None:
        return self.policy

    def where(self, repository: str) -> str:
        return "memory"


# -- 1 and 2: arbitrary documents, arbitrary requests ------------------------------------------

VALID = f"""\
version: 1
repository: {REPOSITORY}
repository_id: "{REPOSITORY_ID}"
connectors:
  hubspot:
    - name: any
      scopes: [a, b]
      max_ttl: 15m
      when:
        event_name: [push, "*"]
        ref: refs/heads/*
"""
VALID_ORG = f"""\
version: 1
organization: octo-org
organization_id: "{OWNER_ID}"
connectors:
  hubspot:
    scopes: [a, b]
    max_ttl: 30m
    when: {{runner_environment: github-hosted}}
"""

#: pieces of YAML, sharp ones included (anchors, aliases, tags, flow, merge keys, …)
YAML_PIECES = [
    "version: 1\n",
    "version: '1'\n",
    f"repository: {REPOSITORY}\n",
    f'repository_id: "{REPOSITORY_ID}"\n',
    f"repository_id: {REPOSITORY_ID}\n",
    "organization: octo-org\n",
    "connectors:\n",
    "  hubspot:\n",
    "    - scopes: [a, b]\n",
    "      max_ttl: 15m\n",
    "      max_ttl: 0\n",
    "      max_ttl: 99999999999999999999999\n",
    "      when:\n",
    "        event_name: [push, pull_request_target]\n",
    "        ref: 'refs/heads/*'\n",
    "        ref: '**'\n",
    "        environment: no\n",
    "        bogus: x\n",
    "&a ",
    "*a ",
    "!!python/object:os.system ",
    "!!str ",
    "<<: *a\n",
    "? ",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "'",
    '"',
    "|\n",
    ">-\n",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "# comment\n",
    "\t",
    "  ",
    "\n",
    "~",
    "null",
    "true",
    "0x1f",
    "0755",
    "1:30",
    "1e3",
    ".inf",
    "\ufeff",
    "\x00",
    "\u2028",
    "é",
]

yaml_ish = st.lists(st.one_of(st.sampled_from(YAML_PIECES), st.text(max_size=8)), max_size=40).map(
    "".join
)


@st.composite
def mangled_valid(draw: st.DrawFn, base: str) -> str:
    """A valid document with lines dropped, repeated, re-indented or replaced."""
    lines = base.splitlines(keepends=True)
    for _ in range(draw(st.integers(0, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "repeat", "indent", "dedent", "replace", "cut"]))
        line = lines[index]
        if action == "drop" and len(lines) > 1:
            del lines[index]
        elif action == "repeat":
            lines.insert(index, line)
        elif action == "indent":
            lines[index] = "  " + line
        elif action == "dedent":
            lines[index] = line[2:] if line.startswith("  ") else line
        elif action == "replace":
            lines[index] = draw(st.sampled_from(YAML_PIECES))
        else:
            lines[index] = line[: draw(st.integers(0, len(line)))]
    return "".join(lines)


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=10,
    )


documents = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400),
    yaml_ish,
    mangled_valid(VALID),
    mangled_valid(VALID_ORG),
    # any YAML PyYAML itself writes, as text
    json_values().map(lambda value: yaml.safe_dump(value, allow_unicode=True)),
    st.dictionaries(
        st.sampled_from(["version", "repository", "repository_id", "connectors", "organization"]),
        json_values(),
    ).map(lambda value: yaml.safe_dump(value, allow_unicode=True)),
)

any_claims = st.dictionaries(
    st.sampled_from([*IDENTITY, *WHEN_CLAIMS, "iss", "jti"]) | st.text(max_size=10),
    json_values(),
    max_size=12,
).map(lambda claims: {**IDENTITY, **claims})


@pytest.mark.parametrize("loader", [load_repository_policy, load_org_policy])
@given(document=documents)
@example(document=b"\xff\xfe")
@example(document="a: &x [*x]")
@example(document="version: 1\nversion: 1\n")
@example(document=VALID.replace("15m", "99999999999999999999999"))
@example(document="[" * 5000)  # found here: RecursionError, now PolicyError (strict_yaml)
@example(document="version: 1\x1f")  # found here: yaml's ReaderError, now PolicyError
def test_any_document_loads_or_raises_policy_error(loader: Any, document: bytes | str) -> None:
    error: PolicyError | None = None
    try:
        loader(document, "policy.yml")
    except PolicyError as exc:
        error = exc
    if error is not None:
        assert error.source == "policy.yml"
        assert error.line >= 0
        assert str(error).startswith("policy.yml")


@given(
    document=documents,
    claims=any_claims,
    connector=st.sampled_from(CONNECTORS) | st.text(max_size=10),
    scopes=st.lists(st.sampled_from(["a", "b", "c"]) | st.text(max_size=5), max_size=4),
    ttl=st.none() | st.integers(-(2**70), 2**70),
)
def test_a_document_that_does_not_load_never_allows(
    document: bytes | str,
    claims: dict[str, Any],
    connector: str,
    scopes: list[str],
    ttl: int | None,
) -> None:
    try:
        load_repository_policy(document, "policy.yml")
        loads = True
    except PolicyError:
        loads = False
    decision = evaluate(Source(document), None, claims, connector, scopes, ttl)
    if not loads:
        assert not decision.allowed
        well_formed = (
            scopes
            and (ttl is None or ttl > 0)
            and all(
                isinstance(claims[name], str) and claims[name]
                for name in ("repository", "repository_id", "repository_owner_id")
            )
        )
        # the request's own checks come first; then an invalid file denies
        assert (
            decision.reason == "policy_invalid"
            if well_formed
            else decision.reason
            in (
                "invalid_request",
                "invalid_claims",
            )
        )
    if decision.allowed:
        assert decision.scopes == tuple(dict.fromkeys(scopes))
        assert decision.max_ttl > 0


@given(
    claims=any_claims,
    connector=st.sampled_from(CONNECTORS) | st.text(max_size=10),
    scopes=st.lists(st.sampled_from(["a", "b", "c"]) | st.text(max_size=5), max_size=4),
    ttl=st.none() | st.integers(-(2**70), 2**70),
    with_org=st.booleans(),
)
def test_evaluate_never_raises_whatever_the_request(
    claims: dict[str, Any], connector: str, scopes: list[str], ttl: int | None, with_org: bool
) -> None:
    org = load_org_policy(VALID_ORG, "org.yml") if with_org else None
    decision = evaluate(Source(VALID), org, claims, connector, scopes, ttl)
    assert decision.allowed == (decision.reason == "allowed")
    assert decision.oauth_error is None if decision.allowed else decision.oauth_error


# -- 3: generated well-formed policies against an independent oracle -------------------------

# Values built from few letters and separators, so that conditions, patterns and claims
# often meet. Patterns draw from the same letters plus `*`.
_VALUE_CHARS = "ab/:-._"
values = st.text(alphabet=_VALUE_CHARS, min_size=1, max_size=8)
patterns = st.lists(st.text(alphabet=_VALUE_CHARS, max_size=3), min_size=2, max_size=4).map(
    lambda parts: re.sub(r"\*+", "*", "*".join(parts))
)
SCOPES = ("a.read", "a.write", "b:admin", "c")


@dataclass(frozen=True)
class GenRule:
    scopes: tuple[str, ...]
    max_ttl: int
    when: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class GenCap:
    scopes: tuple[str, ...]
    max_ttl: int
    when: Mapping[str, tuple[str, ...]]


conditions = st.dictionaries(
    st.sampled_from(WHEN_CLAIMS),
    st.lists(st.one_of(values, patterns, st.sampled_from(GATED)), min_size=1, max_size=3).map(
        tuple
    ),
    max_size=3,
)
rules = st.builds(
    GenRule,
    scopes=st.lists(st.sampled_from(SCOPES), min_size=1, max_size=4, unique=True).map(tuple),
    max_ttl=st.integers(1, 24 * 3600),
    when=conditions,
)
caps = st.builds(
    GenCap,
    scopes=st.lists(st.sampled_from(SCOPES), min_size=1, max_size=4, unique=True).map(tuple),
    max_ttl=st.integers(1, 24 * 3600),
    when=st.dictionaries(st.sampled_from(WHEN_CLAIMS), st.tuples(values | patterns), max_size=1),
)
policies = st.dictionaries(
    st.sampled_from(CONNECTORS), st.lists(rules, min_size=1, max_size=4), min_size=1
)


def render_policy(connectors: Mapping[str, Sequence[GenRule]]) -> str:
    document = {
        "version": 1,
        "repository": REPOSITORY,
        "repository_id": REPOSITORY_ID,
        "connectors": {
            name: [
                {
                    "scopes": list(rule.scopes),
                    "max_ttl": rule.max_ttl,
                    **({"when": {k: list(v) for k, v in rule.when.items()}} if rule.when else {}),
                }
                for rule in rules
            ]
            for name, rules in connectors.items()
        },
    }
    return yaml.safe_dump(document, sort_keys=False)


def render_org(caps: Mapping[str, GenCap]) -> str:
    document = {
        "version": 1,
        "organization": "octo-org",
        "organization_id": OWNER_ID,
        "connectors": {
            name: {
                "scopes": list(cap.scopes),
                "max_ttl": cap.max_ttl,
                **({"when": {k: list(v) for k, v in cap.when.items()}} if cap.when else {}),
            }
            for name, cap in caps.items()
        },
    }
    return yaml.safe_dump(document, sort_keys=False)


def value_holds(accepted: str, claim: object) -> bool:
    """docs/policy.md: exact, or with `*` a whole-claim pattern where `*` is any run of
    characters but `/` and `:`. An absent (or non-string) claim matches nothing."""
    if not isinstance(claim, str) or not claim.isprintable():
        return False
    if "*" not in accepted:
        return claim == accepted
    regex = "".join("[^/:]*" if c == "*" else re.escape(c) for c in accepted)
    return re.fullmatch(regex, claim, flags=re.DOTALL) is not None


def when_holds(when: Mapping[str, Sequence[str]], claims: Mapping[str, object]) -> bool:
    return all(any(value_holds(v, claims.get(k)) for v in vs) for k, vs in when.items())


def oracle(
    connectors: Mapping[str, Sequence[GenRule]],
    org: Mapping[str, GenCap] | None,
    claims: Mapping[str, object],
    connector: str,
    requested: Sequence[str],
    ttl: int | None,
) -> tuple[int, int] | None:
    """(index of the granting rule, lifetime), or None for a denial."""
    if not requested or (ttl is not None and ttl <= 0):
        return None
    cap_ttl = None
    if org is not None:
        cap = org.get(connector)
        if claims.get("repository_owner_id") != OWNER_ID or cap is None:
            return None
        if not when_holds(cap.when, claims) or not set(requested) <= set(cap.scopes):
            return None
        cap_ttl = cap.max_ttl
    for index, rule in enumerate(connectors.get(connector, ())):
        if not when_holds(rule.when, claims):
            continue
        event = claims.get("event_name")
        if event in GATED and event not in rule.when.get("event_name", ()):
            continue  # gated events: only a rule naming them exactly
        if not set(requested) <= set(rule.scopes):
            continue
        return index, min(t for t in (ttl, rule.max_ttl, cap_ttl) if t is not None)
    return None


def instance(accepted: str, fill: str) -> str:
    """A claim value meant to match `accepted` (each `*` replaced by `fill`)."""
    return accepted.replace("*", fill)


@st.composite
def requests(
    draw: st.DrawFn,
    connectors: Mapping[str, Sequence[GenRule]],
    org: Mapping[str, GenCap] | None,
) -> tuple[dict[str, object], str, list[str], int | None]:
    """Claims, connector, scopes and lifetime, mostly close to what the policy names."""
    connector = draw(st.sampled_from([*connectors] * 4 + ["other"]))
    rules = list(connectors.get(connector, ())) or [
        rule for rs in connectors.values() for rule in rs
    ]
    claims: dict[str, object] = dict(IDENTITY)
    fill = draw(st.sampled_from(["", "x", "a-b", "a/b", "a:b", "é"]))
    cap = (org or {}).get(connector)
    for when in [*(rule.when for rule in rules), *([cap.when] if cap else [])]:
        for claim, accepted in when.items():
            choice = draw(st.sampled_from([*accepted] * 4 + ["absent", "other"]))
            if choice == "absent":
                claims.pop(claim, None)
            elif choice == "other":
                claims[claim] = draw(values | st.sampled_from([1, None, "x\n", "\u202e"]))
            else:
                claims[claim] = instance(choice, fill)
    if draw(st.integers(0, 3)) == 2:
        claims["event_name"] = draw(st.sampled_from([*GATED, "push"]))
    if draw(st.integers(0, 19)) == 13:
        claims["repository_owner_id"] = "1"
    pool = sorted({s for rule in rules for s in rule.scopes}) or list(SCOPES)
    scopes = draw(st.lists(st.sampled_from([*pool] * 4 + ["z"]), min_size=1, max_size=3))
    if draw(st.integers(0, 19)) == 13:
        scopes = []
    ttl = draw(
        st.sampled_from([None, None, 0, -1])
        if draw(st.integers(0, 9)) == 7
        else st.integers(1, 2 * 24 * 3600)
    )
    return claims, connector, scopes, ttl


@st.composite
def orgs(draw: st.DrawFn, connectors: Mapping[str, Sequence[GenRule]]) -> dict[str, GenCap] | None:
    """No cap, or a cap on most of the policy's connectors (and maybe on others)."""
    if draw(st.booleans()):
        return None
    names = [name for name in connectors if draw(st.integers(0, 3))] or list(connectors)[:1]
    names += draw(st.lists(st.sampled_from(CONNECTORS), max_size=1))
    return {name: draw(caps) for name in dict.fromkeys(names)}


def check_against_oracle(
    connectors: Mapping[str, Sequence[GenRule]],
    org: Mapping[str, GenCap] | None,
    request: tuple[dict[str, object], str, list[str], int | None],
) -> PolicyDecision:
    policy = load_repository_policy(render_policy(connectors), "policy.yml")
    org_policy = load_org_policy(render_org(org), "org.yml") if org is not None else None
    claims, connector, scopes, ttl = request

    decision = evaluate(PolicyObject(policy), org_policy, claims, connector, scopes, ttl)
    expected = oracle(connectors, org, claims, connector, list(dict.fromkeys(scopes)), ttl)

    assert decision.allowed == (expected is not None), (decision.reason, decision.description)
    if expected is None:
        return decision
    index, lifetime = expected
    rule = policy.connectors[connector][index]
    assert decision.rule == rule.label
    assert decision.max_ttl == lifetime
    # an allow grants only what the granting rule (and the cap) list
    assert set(decision.scopes) == set(scopes)
    assert set(decision.scopes) <= rule.scopes
    if org_policy is not None:
        assert set(decision.scopes) <= org_policy.connectors[connector].scopes
    return decision


@given(data=st.data(), connectors=policies)
def test_evaluate_decides_as_the_documented_semantics(
    data: st.DataObject, connectors: dict[str, list[GenRule]]
) -> None:
    org = data.draw(orgs(connectors))
    decision = check_against_oracle(connectors, org, data.draw(requests(connectors, org)))
    event("allowed" if decision.allowed else f"denied: {decision.reason}")


@pytest.mark.parametrize(
    ("when", "event", "allowed"),
    [
        ({"event_name": ("*",)}, "pull_request_target", False),
        ({"event_name": ("*_target",)}, "pull_request_target", False),
        ({"event_name": ("pull_request_target",)}, "pull_request_target", True),
        ({"event_name": ("*", "workflow_run")}, "workflow_run", True),
        ({}, "workflow_run", False),
        ({"ref": ("refs/heads/*",)}, "push", False),  # the job has no ref claim
    ],
)
def test_the_oracle_and_evaluate_agree_on_the_documented_edges(
    when: dict[str, tuple[str, ...]], event: str, allowed: bool
) -> None:
    connectors = {"hubspot": [GenRule(("c",), 60, when)]}
    claims: dict[str, object] = {**IDENTITY, "event_name": event}
    assert (oracle(connectors, None, claims, "hubspot", ["c"], None) is not None) == allowed
    check_against_oracle(connectors, None, (claims, "hubspot", ["c"], None))


@given(pattern=patterns, fill=st.text(alphabet=_VALUE_CHARS + "é\n", max_size=6))
def test_a_pattern_matches_as_documented(pattern: str, fill: str) -> None:
    """The glob of docs/policy.md, one condition at a time, on both sides of the line."""
    claim = instance(pattern, fill)
    text = render_policy({"hubspot": [GenRule(("c",), 60, {"ref": (pattern,)})]})
    policy = load_repository_policy(text, "policy.yml")
    decision = evaluate(PolicyObject(policy), None, {**IDENTITY, "ref": claim}, "hubspot", ["c"])
    assert decision.allowed == value_holds(pattern, claim)
