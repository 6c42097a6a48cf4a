"""Claim conditions: exact values, lists, and patterns that cannot cross '/' or ':'."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobtoken.policy.conditions import MAX_STARS, Condition


def matches(values: tuple[str, ...], value: str | None, claim: str = "ref") -> bool:
    claims = {} if value is None else {claim: value}
    return Condition(claim, values).matches(claims)


def test_exact_value_and_lists() -> None:
    assert matches(("refs/heads/main",), "refs/heads/main")
    assert not matches(("refs/heads/main",), "refs/heads/main2")
    assert not matches(("refs/heads/main",), "Refs/heads/main")
    assert matches(("push", "schedule"), "schedule", claim="event_name")
    assert not matches(("push", "schedule"), "pull_request", claim="event_name")


def test_absent_or_non_string_claim_matches_nothing() -> None:
    assert not matches(("*",), None, claim="environment")
    assert not Condition("environment", ("*",)).matches({"environment": 1})
    assert not matches(("",), None, claim="environment")


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("refs/heads/release-*", "refs/heads/release-1", True),
        ("refs/heads/release-*", "refs/heads/release-", True),
        ("refs/heads/release-*", "refs/heads/release-1/evil", False),
        ("refs/heads/*", "refs/heads/feature/x", False),
        ("refs/tags/v*", "refs/tags/v1.2.3", True),
        ("refs/tags/v*", "xrefs/tags/v1", False),
        ("refs/tags/v*", "refs/tags/v1\n", False),
        ("octo-org/*/.github/workflows/deploy.yml@refs/heads/main",
         "octo-org/app/.github/workflows/deploy.yml@refs/heads/main", True),
        ("octo-org/*/.github/workflows/deploy.yml@refs/heads/main",
         "evil/octo-org/x/.github/workflows/deploy.yml@refs/heads/main", False),
        ("octo-org/*", "octo-org-evil/app", False),
        ("repo:octo-org/app:*", "repo:octo-org/app:environment:prod", False),
        ("repo:octo-org/app:environment:*", "repo:octo-org/app:environment:prod", True),
        ("*", "anything-without-separators", True),
        ("*", "a/b", False),
        ("*", "a:b", False),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "aXbY", False),
        ("*.yml", "deploy.yml", True),
    ],
)  # fmt: skip
def test_patterns_are_anchored_and_stay_within_a_segment(
    pattern: str, value: str, expected: bool
) -> None:
    assert matches((pattern,), value) is expected


@given(
    prefix=st.text(alphabet="ab/:-", max_size=8),
    middle=st.text(alphabet="ab/:-.", max_size=12),
)
def test_star_never_produces_a_separator(prefix: str, middle: str) -> None:
    value = f"{prefix}{middle}end"
    assert matches((f"{prefix}*end",), value) is ("/" not in middle and ":" not in middle)


def test_pathological_patterns_match_in_bounded_time() -> None:
    # A backtracking regular expression would take hours on this; the bound is loose.
    pattern = "*a" * MAX_STARS + "b"
    started = time.monotonic()
    assert not matches((pattern,), "a" * 5000)
    assert matches((pattern,), "a" * 5000 + "b")
    assert time.monotonic() - started < 5.0


def test_pattern_limits() -> None:
    with pytest.raises(ValueError, match="at most"):
        Condition("ref", ("*a" * (MAX_STARS + 1),))
    with pytest.raises(ValueError, match=r"\*\*"):
        Condition("ref", ("refs/**",))
    with pytest.raises(ValueError, match="unknown claim"):
        Condition("repository_id", ("1",))


def test_names_exactly_ignores_patterns() -> None:
    condition = Condition("event_name", ("pull_request*", "push"))
    assert condition.names_exactly("push")
    assert not condition.names_exactly("pull_request_target")
    assert condition.matches({"event_name": "pull_request_target"})
