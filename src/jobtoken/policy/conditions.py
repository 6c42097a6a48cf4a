"""Conditions on ID-token claims: exact values, lists of them, or anchored patterns.

A ``Condition`` holds one claim name and the values it accepts. A value is
exact unless it contains ``*``; then it is a pattern where each ``*`` matches
any run of characters *other than* ``/`` and ``:`` — so ``refs/heads/release-*``
matches ``refs/heads/release-1`` but never ``refs/heads/release-1/evil``, and
``octo-org/*`` cannot reach into another owner. Patterns match the whole claim
(anchored at both ends). A claim absent from the token, or holding a
non-printable character, matches nothing.

``pull_request_target`` and ``workflow_run`` run with the base repository's
permissions on behalf of code the repository does not control; a rule allows
them only when its ``event_name`` condition names them exactly
(``Condition.names_exactly``), never through a pattern.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["CLAIMS", "GATED_EVENTS", "MAX_STARS", "Condition"]

#: Claims a condition may test (GitHub's ID-token claims, minus the identity
#: ones that the policy's ``repository``/``repository_id`` already bind).
CLAIMS = frozenset(
    {
        "actor",
        "actor_id",
        "base_ref",
        "enterprise",
        "enterprise_id",
        "environment",
        "event_name",
        "head_ref",
        "job_workflow_ref",
        "job_workflow_sha",
        "ref",
        "ref_protected",
        "ref_type",
        "repository_visibility",
        "runner_environment",
        "sha",
        "sub",
        "workflow",
        "workflow_ref",
        "workflow_sha",
    }
)
#: Events a rule must name exactly to allow.
GATED_EVENTS = frozenset({"pull_request_target", "workflow_run"})
#: Most ``*`` in one pattern (bounds matching time).
MAX_STARS = 8


@dataclass(frozen=True)
class Condition:
    claim: str
    values: tuple[str, ...]
    line: int = 0
    _exact: frozenset[str] = field(init=False, repr=False, compare=False)
    _patterns: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.claim not in CLAIMS:
            raise ValueError(f"unknown claim {self.claim!r}")
        exact = frozenset(v for v in self.values if "*" not in v)
        patterns = tuple(_checked_pattern(v) for v in self.values if "*" in v)
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(self, "_patterns", patterns)

    def matches(self, claims: Mapping[str, object]) -> bool:
        value = claims.get(self.claim)
        if not isinstance(value, str) or not value.isprintable():
            return False
        return value in self._exact or any(_glob_matches(p, value) for p in self._patterns)

    def names_exactly(self, value: str) -> bool:
        return value in self._exact


def _checked_pattern(pattern: str) -> str:
    if pattern.count("*") > MAX_STARS:
        raise ValueError(f"a pattern may hold at most {MAX_STARS} '*'")
    if "**" in pattern:
        raise ValueError("'**' is not a pattern here: '*' never crosses '/' or ':'")
    return pattern


def _glob_matches(pattern: str, value: str) -> bool:
    """Whole-string match where ``*`` matches any run of characters but ``/`` and ``:``.

    Since ``*`` never produces a separator, the separators of pattern and value
    must line up one to one; each segment is then matched by the classic
    greedy wildcard algorithm (time bounded by segment lengths, no backtracking
    blow-up as a regular expression could have).
    """
    pattern_parts, value_parts = _SEPARATORS.split(pattern), _SEPARATORS.split(value)
    if len(pattern_parts) != len(value_parts):
        return False
    for index, (p, v) in enumerate(zip(pattern_parts, value_parts, strict=True)):
        if index % 2 == 1:  # a separator itself
            if p != v:
                return False
        elif not _segment_matches(p, v):
            return False
    return True


def _segment_matches(pattern: str, value: str) -> bool:
    p = v = 0
    star, mark = -1, 0
    while v < len(value):
        if p < len(pattern) and pattern[p] != "*" and pattern[p] == value[v]:
            p, v = p + 1, v + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, v
            p += 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            v = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


_SEPARATORS = re.compile(r"([/:])")
