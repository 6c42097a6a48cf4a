"""Warnings about valid policies that grant more than their authors likely meant.

``broad_grants(policy)`` returns a ``PolicyWarning`` (file, line, message) for:

- a condition value that matches any value of its claim (``event_name: "*"``,
  ``actor: "*"``): every segment is a bare ``*``;
- a wildcard ref in ``ref``, ``base_ref`` or ``head_ref``: the kind of ref is a
  pattern (``refs/*/main``), the value is ``refs/*`` (which, since ``*`` never
  crosses ``/``, matches no branch or tag at all), or every branch or every tag
  (``refs/heads/*``, ``refs/tags/*``) without a ``ref_protected: "true"``
  condition beside it;
- a repository rule with no conditions: any job of the repository gets its scopes;
- a ``max_ttl`` above ``LONG_TTL_SECONDS`` (1 h).

A warning does not make a file invalid: ``jobtoken policy check`` prints it
and still exits 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from jobtoken.policy.conditions import Condition
from jobtoken.policy.schema import OrgPolicy, RepositoryPolicy

__all__ = ["LONG_TTL_SECONDS", "PolicyWarning", "broad_grants"]

LONG_TTL_SECONDS = 3600
_REF_CLAIMS = frozenset({"ref", "base_ref", "head_ref"})
_SEPARATORS = re.compile(r"[/:]")


@dataclass(frozen=True)
class PolicyWarning:
    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


def broad_grants(policy: RepositoryPolicy | OrgPolicy) -> list[PolicyWarning]:
    found: list[PolicyWarning] = []
    if isinstance(policy, RepositoryPolicy):
        for connector, rules in policy.connectors.items():
            for rule in rules:
                where = f"connectors.{connector}[{rule.index}]"
                if not rule.conditions:
                    found.append(
                        PolicyWarning(
                            policy.source,
                            rule.line,
                            f"{where} has no conditions (no 'when'): any job of "
                            f"{policy.repository}, on any branch and any event, gets "
                            f"{_scopes(rule.scopes)}",
                        )
                    )
                found += _conditions(policy.source, where, rule.conditions, rule.line)
                found += _ttl(policy.source, where, rule.max_ttl, rule.line)
    else:
        for connector, cap in policy.connectors.items():
            where = f"connectors.{connector}"
            found += _conditions(policy.source, where, cap.conditions, cap.line)
            found += _ttl(policy.source, where, cap.max_ttl, cap.line)
    return sorted(found, key=lambda warning: warning.line)


def _conditions(
    source: str, where: str, conditions: Iterable[Condition], line: int
) -> list[PolicyWarning]:
    conditions = tuple(conditions)
    protected_only = any(c.claim == "ref_protected" and c.values == ("true",) for c in conditions)
    found = []
    for condition in conditions:
        for value in condition.values:
            problem = _too_broad(condition.claim, value, protected_only=protected_only)
            if problem is not None:
                message = f"{where}.when.{condition.claim}: {value!r} {problem}"
                found.append(PolicyWarning(source, condition.line or line, message))
    return found


def _too_broad(claim: str, value: str, *, protected_only: bool) -> str | None:
    segments = _SEPARATORS.split(value)
    if "*" not in value:
        return None
    if all(segment == "*" for segment in segments):
        if claim == "event_name":
            return (
                "matches every event (push from any branch, pull_request, issue_comment, …): "
                "name the events"
            )
        return f"matches any {claim}: name the values, or drop the condition if you mean it"
    if claim not in _REF_CLAIMS or segments[0] != "refs":
        return None
    if len(segments) == 2:
        return (
            "is a wildcard ref that matches no branch or tag ('*' never crosses '/'): "
            "name the ref, e.g. refs/heads/main or refs/heads/release-*"
        )
    if "*" in segments[1]:
        return "matches any kind of ref (branches, tags, pull requests): name the kind"
    if len(segments) == 3 and segments[2] == "*" and not protected_only:
        kind = {"heads": "branch", "tags": "tag"}.get(segments[1], f"{segments[1]} ref")
        return (
            f"matches every {kind}: anyone who can push one gets this; add "
            f'ref_protected: "true" or name them (e.g. refs/{segments[1]}/release-*)'
        )
    return None


def _ttl(source: str, where: str, max_ttl: int, line: int) -> list[PolicyWarning]:
    if max_ttl <= LONG_TTL_SECONDS:
        return []
    message = (
        f"{where}.max_ttl is {max_ttl} s, above {LONG_TTL_SECONDS} s (1 h): a leaked token "
        "stays usable that long; most jobs need 15m"
    )
    return [PolicyWarning(source, line, message)]


def _scopes(scopes: Iterable[str]) -> str:
    return " ".join(sorted(scopes))
