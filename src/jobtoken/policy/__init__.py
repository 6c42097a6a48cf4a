"""The repository admins' policy: which job may get which connector token.

Contract for the broker (``POST /token``), after ``IdTokenVerifier.verify``::

    from jobtoken.policy import DirectoryPolicySource, evaluate, load_org_policy
    source = DirectoryPolicySource(directory)   # or the broker's GitHub contents-API source
    org = load_org_policy(Path("org.yml").read_bytes(), "org.yml")  # or None: no cap
    decision = evaluate(source, org, verified.claims, connector, scopes, requested_ttl)
    if not decision.allowed:
        error = decision.oauth_error           # RFC 6749 code: invalid_scope, invalid_target, …
        message = decision.description         # safe for the workflow author
        audit(reason=decision.reason, …)       # stable machine code
    ttl = min(decision.max_ttl, broker_max_ttl)

``evaluate`` never raises for a bad request, a missing, invalid or unreachable
policy: it returns a denial. Modules: ``schema`` (file format, loading;
``check_policy_file`` gathers every error), ``nodes`` (typed values read from
YAML nodes), ``strict_yaml`` (the YAML subset), ``conditions`` (claim
matching), ``evaluate`` (the decision), ``sources`` (``PolicySource``,
directory), ``lint`` (warnings about over-broad grants), ``diff`` (what a
change grants or removes). The
policy imports nothing of the broker; the broker's GitHub contents-API source
and the ``jobtoken policy`` commands (``jobtoken.cli.policy``) build on it.
"""

from jobtoken.policy.conditions import Condition
from jobtoken.policy.errors import PolicyError, PolicySourceError
from jobtoken.policy.evaluate import REASONS, PolicyDecision, evaluate
from jobtoken.policy.schema import (
    ConnectorCap,
    OrgPolicy,
    RepositoryPolicy,
    Rule,
    load_org_policy,
    load_policy_file,
    load_repository_policy,
)
from jobtoken.policy.sources import DirectoryPolicySource, PolicySource

__all__ = [
    "REASONS",
    "Condition",
    "ConnectorCap",
    "DirectoryPolicySource",
    "OrgPolicy",
    "PolicyDecision",
    "PolicyError",
    "PolicySource",
    "PolicySourceError",
    "RepositoryPolicy",
    "Rule",
    "evaluate",
    "load_org_policy",
    "load_policy_file",
    "load_repository_policy",
]
