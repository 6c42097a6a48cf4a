"""The policy decision for one token request: allowed or denied, and why.

``evaluate(source, org_policy, claims, connector, requested_scopes,
requested_ttl)`` is the one entry point the broker calls, after
``IdTokenVerifier.verify`` and before minting. ``claims`` is the verified
token's claim mapping (``VerifiedClaims.claims``). Steps, first failure wins:

1. the request: at least one scope, a positive TTL if one is given;
2. the organization cap (when ``org_policy`` is given): the token's
   ``repository_owner_id`` is the organization's id; the connector is listed;
   the cap's ``when`` conditions hold; every requested scope is in the cap;
3. the repository policy from ``source`` (an unreachable source or invalid file
   denies): it names this repository **and** this ``repository_id``;
4. the connector's rules in file order: the first rule whose conditions all
   hold (``pull_request_target``/``workflow_run`` only if the rule names them)
   and whose scopes include every requested scope grants.

A grant is ``PolicyDecision(allowed=True, scopes=requested, max_ttl=min(
requested_ttl, rule max_ttl, cap max_ttl))``; the broker then applies its own
maximum. Descriptions speak only of the requesting repository's own policy
and the organization's cap, never of another repository's policy.
``decision.trace`` lists, rule by rule, why each did or did not apply (for
``jobtoken policy explain`` and the audit log); a condition that failed
because its claim is absent says "but the claim X is missing".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from jobtoken.policy.conditions import GATED_EVENTS, Condition
from jobtoken.policy.errors import PolicyError, PolicySourceError
from jobtoken.policy.schema import OrgPolicy, Rule
from jobtoken.policy.sources import PolicySource

__all__ = ["REASONS", "PolicyDecision", "evaluate"]

#: reason code -> RFC 6749 error code the broker should answer with.
REASONS: Mapping[str, str] = {
    "allowed": "",
    "invalid_request": "invalid_request",
    "invalid_claims": "invalid_grant",
    "organization_mismatch": "unauthorized_client",
    "org_connector_not_allowed": "invalid_target",
    "org_conditions_not_met": "unauthorized_client",
    "org_scope_not_allowed": "invalid_scope",
    "policy_unavailable": "unauthorized_client",
    "policy_invalid": "unauthorized_client",
    "no_policy": "unauthorized_client",
    "repository_mismatch": "unauthorized_client",
    "connector_not_allowed": "invalid_target",
    "conditions_not_met": "unauthorized_client",
    "scope_not_allowed": "invalid_scope",
}


@dataclass(frozen=True)
class PolicyDecision:
    allowed: bool
    #: stable machine code (a key of ``REASONS``); "allowed" when allowed
    reason: str
    #: safe to show the workflow author: which check failed and what to change
    description: str
    #: granted scopes (the requested ones, when allowed)
    scopes: tuple[str, ...] = ()
    #: longest lifetime the policy allows for this grant, seconds (0 when denied)
    max_ttl: int = 0
    #: what made ``max_ttl`` shorter than the request: ``policy`` (the rule's max_ttl),
    #: ``organization_policy`` (its cap), or "" (the request's ttl)
    ttl_limit: str = ""
    #: the rule that granted, e.g. "connectors.hubspot[0] 'sync' (file line 7)"
    rule: str | None = None
    #: rule by rule, why each applied or not
    trace: tuple[str, ...] = ()
    #: ``policy_invalid``: the file and line of the error (``FILE:LINE``), for a log
    #: line that names where without the content
    invalid_at: str = ""

    @property
    def oauth_error(self) -> str | None:
        """RFC 6749 §5.2 error code for a denial, None when allowed."""
        return None if self.allowed else REASONS.get(self.reason, "unauthorized_client")


def evaluate(
    source: PolicySource,
    org_policy: OrgPolicy | None,
    claims: Mapping[str, object],
    connector: str,
    requested_scopes: Iterable[str],
    requested_ttl: int | None = None,
) -> PolicyDecision:
    scopes = tuple(dict.fromkeys(requested_scopes))
    if not scopes:
        return _deny("invalid_request", "request at least one scope (the scope parameter)")
    if requested_ttl is not None and requested_ttl <= 0:
        return _deny("invalid_request", "the requested lifetime must be positive")
    identity = [claims.get(name) for name in ("repository", "repository_id", "repository_owner_id")]
    if not all(isinstance(value, str) and value for value in identity):
        return _deny("invalid_claims", "the ID token lacks repository, repository_id or owner id")
    repository, repository_id, owner_id = (str(value) for value in identity)

    cap_ttl: int | None = None
    if org_policy is not None:
        if owner_id != org_policy.organization_id:
            return _deny(
                "organization_mismatch",
                "this broker serves another organization's repositories",
            )
        cap = org_policy.connectors.get(connector)
        if cap is None:
            return _deny(
                "org_connector_not_allowed",
                f"the organization policy does not allow the connector {connector!r}",
            )
        failed = _first_failed(cap.conditions, claims)
        if failed is not None:
            return _deny(
                "org_conditions_not_met",
                f"the organization policy requires the claim {failed.claim!r} to be "
                f"{_show(failed)} for connector {connector!r}{_absent(failed, claims)}",
            )
        beyond = [s for s in scopes if s not in cap.scopes]
        if beyond:
            return _deny(
                "org_scope_not_allowed",
                f"the organization policy does not allow the scope {beyond[0]!r} "
                f"for connector {connector!r}",
            )
        cap_ttl = cap.max_ttl

    try:
        policy = source.policy_for(repository, repository_id)
    except PolicyError as exc:
        invalid = _deny("policy_invalid", f"this repository's policy file is invalid: {exc}")
        return replace(invalid, invalid_at=f"{exc.source}:{exc.line}")
    except PolicySourceError as exc:
        return _deny("policy_unavailable", f"the repository policy could not be read: {exc}")
    if policy is None:
        return _deny(
            "no_policy",
            f"no jobtoken policy for this repository ({source.where(repository)}); "
            "its admins must add one",
        )
    if policy.repository.lower() != repository.lower() or policy.repository_id != repository_id:
        return _deny(
            "repository_mismatch",
            "the policy names a different repository or repository_id than this job's token "
            "(was the repository renamed, transferred or recreated?): its admins must update it",
        )
    rules = policy.connectors.get(connector)
    if not rules:
        return _deny(
            "connector_not_allowed",
            f"this repository's policy has no rule for the connector {connector!r}",
        )

    trace: list[str] = []
    missing_scope: str | None = None
    for rule in rules:
        why_not = _why_not(rule, claims)
        if why_not is not None:
            trace.append(f"{rule.label}: not applicable, {why_not}")
            continue
        beyond = [s for s in scopes if s not in rule.scopes]
        if beyond:
            missing_scope = missing_scope or beyond[0]
            trace.append(f"{rule.label}: applies, but does not allow the scope {beyond[0]!r}")
            continue
        ttl = min(t for t in (requested_ttl, rule.max_ttl, cap_ttl) if t is not None)
        limit = "" if requested_ttl is not None and ttl >= requested_ttl else "policy"
        if limit and ttl != rule.max_ttl:
            limit = "organization_policy"
        trace.append(f"{rule.label}: grants {' '.join(scopes)} for at most {ttl} s")
        return PolicyDecision(
            allowed=True,
            reason="allowed",
            description=f"allowed by {rule.label}",
            scopes=scopes,
            max_ttl=ttl,
            ttl_limit=limit,
            rule=rule.label,
            trace=tuple(trace),
        )
    if missing_scope is not None:
        return _deny(
            "scope_not_allowed",
            f"no rule of this repository's policy allows the scope {missing_scope!r} "
            f"for connector {connector!r} to this job",
            trace,
        )
    return _deny(
        "conditions_not_met",
        f"no rule for connector {connector!r} in this repository's policy matches this job: "
        + "; ".join(trace),
        trace,
    )


def _why_not(rule: Rule, claims: Mapping[str, object]) -> str | None:
    failed = _first_failed(rule.conditions, claims)
    if failed is not None:
        return f"needs {failed.claim} {_show(failed)} (line {failed.line}){_absent(failed, claims)}"
    event = claims.get("event_name")
    if isinstance(event, str) and event in GATED_EVENTS:
        named = any(c.claim == "event_name" and c.names_exactly(event) for c in rule.conditions)
        if not named:
            return f"the event {event} is allowed only by a rule whose event_name names it"
    return None


def _first_failed(
    conditions: Iterable[Condition], claims: Mapping[str, object]
) -> Condition | None:
    return next((c for c in conditions if not c.matches(claims)), None)


def _absent(condition: Condition, claims: Mapping[str, object]) -> str:
    """Says so when a condition failed because its claim is missing altogether."""
    return "" if condition.claim in claims else f", but the claim {condition.claim} is missing"


def _show(condition: Condition) -> str:
    shown = [repr(v) for v in condition.values[:5]]
    more = ", …" if len(condition.values) > 5 else ""
    return ("one of " if len(condition.values) > 1 else "") + ", ".join(shown) + more


def _deny(reason: str, description: str, trace: Iterable[str] = ()) -> PolicyDecision:
    return PolicyDecision(allowed=False, reason=reason, description=description, trace=tuple(trace))
