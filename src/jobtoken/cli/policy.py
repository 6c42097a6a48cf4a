"""``jobtoken policy check FILE…``, ``policy explain …`` (and ``policy diff``, in
``jobtoken.cli.policy_diff``).

``check`` validates repository and organization policy files and reports
every error of each file (``error: FILE:LINE: message`` on stderr), then the
warnings of each valid one (``warning: FILE:LINE: message``, from
``jobtoken.policy.lint``) and ``FILE: ok (…)``. It exits 1 if any file is
invalid, 0 otherwise (warnings included). Inside GitHub Actions
(``GITHUB_ACTIONS=true``) errors and warnings are also
``::error file=…,line=…::…`` / ``::warning …`` annotations on stdout, the
message neutralized (``jobtoken.wire.text.neutralize``: no control
characters, no ``::``) and escaped as the runner expects, so that file
content can never form another workflow command.

``explain --policy FILE --claims claims.json --connector C --scopes "S …"
[--ttl DURATION] [--org-policy FILE]`` (``900``, ``15m``, ``2h``) evaluates one
request offline, exactly as the broker would, and prints the decision, the rule that granted or why
each rule did not apply. It names the claims a rule for the connector (or
the organization cap) conditions on that the input lacks, and which of them
the broker's audit trail does not keep (``AUDITED_CLAIMS``), so a denial
caused by a missing claim reads as such. Exit 0 when allowed, 1 when denied,
2 when an input file is unusable.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from jobtoken.cli import policy_diff
from jobtoken.policy.conditions import Condition
from jobtoken.policy.errors import PolicyError
from jobtoken.policy.evaluate import evaluate
from jobtoken.policy.lint import broad_grants
from jobtoken.policy.schema import (
    OrgPolicy,
    RepositoryPolicy,
    check_policy_file,
    load_policy_file,
)
from jobtoken.wire.grammar import parse_duration
from jobtoken.wire.strict_json import StrictJsonError, loads_strict
from jobtoken.wire.text import neutralize

__all__ = ["AUDITED_CLAIMS", "annotation", "register"]

MAX_CLAIMS_BYTES = 64 * 1024
#: most errors (and, apart, warnings) printed for one file; the rest are counted
MAX_REPORTED = 100
#: the claims the broker's audit trail keeps (``jobtoken.broker.audit.chain.AUDITED_CLAIMS``,
#: copied so that the policy tools need no broker install; a test keeps them equal)
AUDITED_CLAIMS = frozenset(
    {
        "iss",
        "sub",
        "repository",
        "repository_id",
        "repository_owner_id",
        "workflow_ref",
        "job_workflow_ref",
        "sha",
        "ref",
        "event_name",
        "environment",
        "run_id",
        "run_attempt",
        "check_run_id",
        "runner_environment",
        "actor_id",
    }
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = subparsers.add_parser("check", help="validate policy files")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.set_defaults(handler=run_check)

    explain = subparsers.add_parser("explain", help="show which rule allows or denies a request")
    explain.add_argument("--policy", required=True, type=Path, help="repository policy file")
    explain.add_argument("--org-policy", type=Path, help="organization policy file (the cap)")
    explain.add_argument(
        "--claims", required=True, type=Path, help="JSON object of the ID token's claims"
    )
    explain.add_argument("--connector", required=True)
    explain.add_argument(
        "--scopes", required=True, action="append", help="space-separated; may repeat"
    )
    explain.add_argument(
        "--ttl", type=_duration, help="requested lifetime: seconds (900) or 15m, 2h, 1h30m"
    )
    explain.set_defaults(handler=run_explain)
    policy_diff.register(subparsers)


def run_check(args: argparse.Namespace) -> int:
    in_actions = os.environ.get("GITHUB_ACTIONS") == "true"
    failed = 0
    for path in args.files:
        checked = check_policy_file(path)
        errors = sorted(checked.errors, key=lambda e: e.line)
        for error in errors[:MAX_REPORTED]:
            print(f"error: {error}", file=sys.stderr)
            if in_actions:
                print(annotation("error", error.source, error.line, error.message))
        if len(errors) > MAX_REPORTED:
            print(f"error: {path}: {len(errors) - MAX_REPORTED} more errors", file=sys.stderr)
        if checked.policy is None:
            failed += 1
            count = len(errors)
            print(f"{path}: invalid ({count} error{'s' if count > 1 else ''})", file=sys.stderr)
            continue
        warnings = broad_grants(checked.policy)
        for warning in warnings[:MAX_REPORTED]:
            print(f"warning: {warning}", file=sys.stderr)
            if in_actions:
                print(annotation("warning", warning.source, warning.line, warning.message))
        noted = f", {len(warnings)} warning{'s' if len(warnings) > 1 else ''}" if warnings else ""
        print(f"{path}: ok ({_summary(checked.policy)}{noted})")
    return 1 if failed else 0


def annotation(command: str, file: str, line: int, message: str) -> str:
    """One ``::error``/``::warning`` workflow command; nothing in it can start another.

    The message is neutralized (control characters to spaces, ``::`` broken) and
    then escaped as the runner unescapes it (as @actions/core and
    ``jobtoken.action.runtime`` do; the action's module is not imported here).
    """
    props = f"file={_escape_property(file)}"
    if line:
        props += f",line={line}"
    return f"::{command} {props}::{_escape_data(neutralize(message, limit=2000))}"


def run_explain(args: argparse.Namespace) -> int:
    try:
        policy = load_policy_file(args.policy)
        org = load_policy_file(args.org_policy) if args.org_policy else None
        claims = _load_claims(args.claims)
    except (PolicyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not isinstance(policy, RepositoryPolicy):
        print(f"error: {args.policy} is an organization policy; pass it as --org-policy")
        return 2
    if org is not None and not isinstance(org, OrgPolicy):
        print(f"error: {args.org_policy} is a repository policy, not an organization policy")
        return 2
    scopes = [scope for group in args.scopes for scope in group.split()]
    decision = evaluate(_OnePolicy(policy), org, claims, args.connector, scopes, args.ttl)
    verdict = "allowed" if decision.allowed else f"denied ({decision.reason})"
    print(f"decision: {verdict}")
    print(f"why: {decision.description}")
    if decision.allowed:
        print(f"scopes: {' '.join(decision.scopes)}")
        print(f"max ttl: {decision.max_ttl} s")
    else:
        print(f"oauth error: {decision.oauth_error}")
    for line in decision.trace:
        print(f"  - {line}")
    for line in _missing_claims(policy, org, args.connector, claims):
        print(line)
    return 0 if decision.allowed else 1


def _missing_claims(
    policy: RepositoryPolicy, org: OrgPolicy | None, connector: str, claims: dict[str, object]
) -> list[str]:
    """One line per claim that a condition for ``connector`` tests and the input lacks."""
    conditions: list[tuple[str, Condition]] = [
        (f"connectors.{connector}[{rule.index}]", c)
        for rule in policy.connectors.get(connector, ())
        for c in rule.conditions
    ]
    cap = org.connectors.get(connector) if org is not None else None
    if cap is not None and org is not None:
        conditions += [(f"the organization cap {org.source}", c) for c in cap.conditions]
    users: dict[str, list[str]] = {}
    for label, condition in conditions:
        if condition.claim not in claims:
            users.setdefault(condition.claim, []).append(f"{label} line {condition.line}")
    lines = []
    for claim, where in sorted(users.items()):
        kept = "" if claim in AUDITED_CLAIMS else "; the audit trail does not keep it"
        lines.append(
            f"missing claim: {claim} is not in the input{kept} "
            f"(conditioned on by {', '.join(where)})"
        )
    return lines


class _OnePolicy:
    """The policy file given on the command line, as a policy source."""

    def __init__(self, policy: RepositoryPolicy) -> None:
        self._policy = policy

    def policy_for(self, repository: str, repository_id: str) -> RepositoryPolicy:
        return self._policy

    def where(self, repository: str) -> str:
        return self._policy.source


def _load_claims(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CLAIMS_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_CLAIMS_BYTES:
        raise ValueError(f"{path} is larger than {MAX_CLAIMS_BYTES} bytes")
    try:
        claims = loads_strict(data)
    except StrictJsonError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not isinstance(claims, dict):
        raise ValueError(f"{path} must hold a JSON object of claims")
    return claims


def _summary(policy: RepositoryPolicy | OrgPolicy) -> str:
    if isinstance(policy, OrgPolicy):
        return f"organization policy of {policy.organization}, {len(policy.connectors)} connectors"
    rules = sum(len(r) for r in policy.connectors.values())
    return f"repository policy of {policy.repository}, {rules} rule{'s' if rules > 1 else ''}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _duration(text: str) -> int:
    """``--ttl``: a duration as the action's ``ttl`` input takes it, in seconds."""
    seconds = parse_duration(text)
    if seconds is None or seconds < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: seconds (900) or hours, minutes and seconds (2h, 1h30m)"
        )
    return seconds
