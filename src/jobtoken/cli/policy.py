"""``jobtoken policy check FILE…`` and ``jobtoken policy explain …``.

``check`` validates repository and organization policy files; it prints one
line per file and exits 1 if any is invalid. Inside GitHub Actions
(``GITHUB_ACTIONS=true``) errors are ``::error file=…,line=…::…``
annotations, escaped so that file content can never form another workflow
command.

``explain --policy FILE --claims claims.json --connector C --scopes "S …"
[--ttl SECONDS] [--org-policy FILE]`` evaluates one request offline, exactly
as the broker would, and prints the decision, the rule that granted or why
each rule did not apply. Exit 0 when allowed, 1 when denied, 2 when an input
file is unusable.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from jobtoken.policy.errors import PolicyError
from jobtoken.policy.evaluate import evaluate
from jobtoken.policy.schema import OrgPolicy, RepositoryPolicy, load_policy_file
from jobtoken.wire.strict_json import StrictJsonError, loads_strict

__all__ = ["register"]

MAX_CLAIMS_BYTES = 64 * 1024


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
    explain.add_argument("--ttl", type=int, help="requested lifetime in seconds")
    explain.set_defaults(handler=run_explain)


def run_check(args: argparse.Namespace) -> int:
    in_actions = os.environ.get("GITHUB_ACTIONS") == "true"
    failed = 0
    for path in args.files:
        try:
            policy = load_policy_file(path)
        except PolicyError as exc:
            failed += 1
            if in_actions:
                props = f"file={_escape_property(exc.source)}"
                if exc.line:
                    props += f",line={exc.line}"
                print(f"::error {props}::{_escape_data(exc.message)}")
            else:
                print(f"error: {exc}", file=sys.stderr)
            continue
        print(f"{path}: ok ({_summary(policy)})")
    return 1 if failed else 0


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
    return 0 if decision.allowed else 1


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
    return f"repository policy of {policy.repository}, {rules} rules"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
