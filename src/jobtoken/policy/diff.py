"""What access a policy change grants or removes, connector by connector, rule by rule.

``diff_policies(old, new)`` compares two policies of the same kind (either may
be None: no policy, no access) and returns ``Change`` values, each one of:

- ``widened`` — the change grants more: a new connector or rule, a new scope,
  a condition removed, values added to a condition, a pattern replaced by a
  broader one, a raised ``max_ttl``, another repository or organization;
- ``narrowed`` — the change grants less (the reverse of each of those);
- ``changed`` — a condition's values changed and neither side covers the
  other (or the order of the rules changed: the first match wins), so the
  reader must judge.

Rules are matched by ``name``; unnamed rules by their order among the unnamed
ones of their connector. A change names a rule ``'name'`` or ``#index``.
A pattern covers a value when it matches it with the value's ``*`` read as a
character (``refs/heads/*`` covers ``refs/heads/release-*``); that is sound,
not complete, so a broader pattern it cannot prove is reported as ``changed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jobtoken.policy.conditions import GATED_EVENTS, Condition
from jobtoken.policy.schema import ConnectorCap, OrgPolicy, RepositoryPolicy, Rule

__all__ = ["KINDS", "Change", "diff_policies"]

KINDS = ("widened", "narrowed", "changed")


@dataclass(frozen=True)
class Change:
    kind: str  # one of KINDS
    connector: str  # "" for the whole policy (repository, organization)
    rule: str  # e.g. "'nightly-sync'" or "#1"; "" for a connector or the whole policy
    detail: str
    line: int = 0  # in the new file, 0 if the thing is gone


def diff_policies(
    old: RepositoryPolicy | OrgPolicy | None, new: RepositoryPolicy | OrgPolicy | None
) -> list[Change]:
    if old is not None and new is not None and type(old) is not type(new):
        raise ValueError("one file is a repository policy, the other an organization policy")
    if isinstance(old, OrgPolicy) or isinstance(new, OrgPolicy):
        return _org_diff(_org(old), _org(new))
    return _repository_diff(_repo(old), _repo(new))


def _repo(policy: RepositoryPolicy | OrgPolicy | None) -> RepositoryPolicy | None:
    return policy if isinstance(policy, RepositoryPolicy) else None


def _org(policy: RepositoryPolicy | OrgPolicy | None) -> OrgPolicy | None:
    return policy if isinstance(policy, OrgPolicy) else None


def _repository_diff(old: RepositoryPolicy | None, new: RepositoryPolicy | None) -> list[Change]:
    changes: list[Change] = []
    if old is not None and new is not None:
        before, after = (old.repository, old.repository_id), (new.repository, new.repository_id)
        if before != after:
            changes.append(
                Change(
                    "widened",
                    "",
                    "",
                    f"now applies to {new.repository} (id {new.repository_id}), "
                    f"no longer to {old.repository} (id {old.repository_id})",
                )
            )
    old_rules = old.connectors if old is not None else {}
    new_rules = new.connectors if new is not None else {}
    for connector in _union(old_rules, new_rules):
        changes += _rules_diff(
            connector, old_rules.get(connector, ()), new_rules.get(connector, ())
        )
    return changes


def _rules_diff(connector: str, old: Iterable[Rule], new: Iterable[Rule]) -> list[Change]:
    old_by_key, new_by_key = _keyed(old), _keyed(new)
    changes: list[Change] = []
    if not old_by_key:
        changes.append(Change("widened", connector, "", "new connector"))
    elif not new_by_key:
        changes.append(Change("narrowed", connector, "", "connector removed: no rule grants it"))
    for key in _union(old_by_key, new_by_key):
        before, after = old_by_key.get(key), new_by_key.get(key)
        label = _label(after or before)
        if before is None and after is not None:
            detail = f"new rule: grants {_scopes(after.scopes)} for at most {after.max_ttl} s"
            detail += f" {_when(after.conditions)}"
            changes.append(Change("widened", connector, label, detail, after.line))
        elif after is None and before is not None:
            detail = f"rule removed: no longer grants {_scopes(before.scopes)}"
            changes.append(Change("narrowed", connector, label, detail))
        elif before is not None and after is not None:
            changes += _grant_diff(connector, label, before, after, after.line)
    shared = [key for key in old_by_key if key in new_by_key]
    if shared != [key for key in new_by_key if key in old_by_key]:
        changes.append(
            Change(
                "changed", connector, "", "the order of the rules changed (the first match wins)"
            )
        )
    return changes


def _org_diff(old: OrgPolicy | None, new: OrgPolicy | None) -> list[Change]:
    changes: list[Change] = []
    if old is not None and new is not None:
        before, after = (
            (old.organization, old.organization_id),
            (new.organization, new.organization_id),
        )
        if before != after:
            changes.append(
                Change(
                    "widened",
                    "",
                    "",
                    f"now caps {new.organization} (id {new.organization_id}), "
                    f"no longer {old.organization} (id {old.organization_id})",
                )
            )
    old_caps = old.connectors if old is not None else {}
    new_caps = new.connectors if new is not None else {}
    for connector in _union(old_caps, new_caps):
        cap_before, cap_after = old_caps.get(connector), new_caps.get(connector)
        if cap_before is None and cap_after is not None:
            detail = f"new connector: allows {_scopes(cap_after.scopes)} for at most "
            detail += f"{cap_after.max_ttl} s {_when(cap_after.conditions)}"
            changes.append(Change("widened", connector, "cap", detail, cap_after.line))
        elif cap_after is None and cap_before is not None:
            detail = "connector removed: no repository may be granted it"
            changes.append(Change("narrowed", connector, "cap", detail))
        elif cap_before is not None and cap_after is not None:
            changes += _grant_diff(connector, "cap", cap_before, cap_after, cap_after.line)
    return changes


def _grant_diff(
    connector: str, rule: str, old: Rule | ConnectorCap, new: Rule | ConnectorCap, line: int
) -> list[Change]:
    changes = []
    for scope in sorted(new.scopes - old.scopes):
        changes.append(Change("widened", connector, rule, f"now grants the scope {scope}", line))
    for scope in sorted(old.scopes - new.scopes):
        changes.append(Change("narrowed", connector, rule, f"no longer grants {scope}", line))
    if new.max_ttl != old.max_ttl:
        kind, verb = ("widened", "raised") if new.max_ttl > old.max_ttl else ("narrowed", "lowered")
        detail = f"max_ttl {verb} from {old.max_ttl} s to {new.max_ttl} s"
        changes.append(Change(kind, connector, rule, detail, line))
    old_when = {c.claim: c for c in old.conditions}
    new_when = {c.claim: c for c in new.conditions}
    for claim in _union(old_when, new_when):
        before, after = old_when.get(claim), new_when.get(claim)
        if after is None and before is not None:
            detail = f"no longer requires {claim} {_values(before)}"
            changes.append(Change("widened", connector, rule, detail, line))
        elif before is None and after is not None:
            detail = f"now requires {claim} {_values(after)}"
            changes.append(Change("narrowed", connector, rule, detail, after.line))
        elif before is not None and after is not None:
            change = _condition_diff(before, after)
            if change is not None:
                changes.append(Change(change[0], connector, rule, change[1], after.line))
    return changes


def _condition_diff(old: Condition, new: Condition) -> tuple[str, str] | None:
    if set(old.values) == set(new.values):
        return None
    detail = f"{new.claim} was {_values(old)}, now {_values(new)}"
    wider = all(_covered(old.claim, value, new.values) for value in old.values)
    narrower = all(_covered(old.claim, value, old.values) for value in new.values)
    if wider and not narrower:
        return "widened", detail
    if narrower and not wider:
        return "narrowed", detail
    if wider and narrower:
        return None  # written differently, matches the same
    return "changed", detail


def _covered(claim: str, value: str, by: tuple[str, ...]) -> bool:
    """Every claim that ``value`` matches is matched by one of ``by`` (sound, not complete)."""
    if claim == "event_name" and value in GATED_EVENTS:
        return value in by  # only an exact name allows these events
    return any(Condition("sub", (pattern,)).matches({"sub": value}) for pattern in by)


def _keyed(rules: Iterable[Rule]) -> dict[str, Rule]:
    """Rules by name; an unnamed rule by its place among the unnamed ones."""
    keyed: dict[str, Rule] = {}
    unnamed = 0
    for rule in rules:
        if rule.name:
            keyed[f"name {rule.name}"] = rule
        else:
            keyed[f"unnamed {unnamed}"] = rule
            unnamed += 1
    return keyed


def _label(rule: Rule | None) -> str:
    """How a change names its rule: ``'name'``, or ``#index`` (in the new file if it is there)."""
    if rule is None:  # pragma: no cover - one side always has it
        return ""
    return repr(rule.name) if rule.name else f"#{rule.index}"


def _union(first: Mapping[str, object], second: Mapping[str, object]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def _scopes(scopes: Iterable[str]) -> str:
    return " ".join(sorted(scopes))


def _values(condition: Condition) -> str:
    shown = ", ".join(repr(v) for v in condition.values)
    return f"one of {shown}" if len(condition.values) > 1 else shown


def _when(conditions: Iterable[Condition]) -> str:
    parts = [f"{c.claim} {_values(c)}" for c in conditions]
    return "when " + " and ".join(parts) if parts else "with no conditions"
