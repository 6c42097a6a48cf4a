"""``jobtoken policy diff OLD NEW [--name NAME] [--summary FILE] [--fail-on-widen]``.

Says what access a policy change grants or removes (``jobtoken.policy.diff``):
a heading (``policy diff NAME``, NAME defaulting to ``OLD -> NEW``), one line
per change on stdout, ``KIND  CONNECTOR RULE (line N): detail``, then a
verdict line. With ``--summary FILE``, or when ``GITHUB_STEP_SUMMARY`` is set
(a GitHub Actions step), it also appends a Markdown table to that file (the
job summary). An empty OLD or NEW file (or ``/dev/null``) is "no policy": a
policy added in a pull request is all new access. Exit 0; 2 with
``--fail-on-widen`` when any change widens access; 1 when a file is invalid
or the two are not of the same kind.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from jobtoken.policy.diff import Change, diff_policies
from jobtoken.policy.errors import PolicyError
from jobtoken.policy.schema import OrgPolicy, RepositoryPolicy, load_policy_file
from jobtoken.wire.text import neutralize

__all__ = ["register", "run_diff"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    diff = subparsers.add_parser("diff", help="say what access a policy change grants or removes")
    diff.add_argument("old", type=Path, metavar="OLD", help="the policy before (empty: none)")
    diff.add_argument("new", type=Path, metavar="NEW", help="the policy after (empty: none)")
    diff.add_argument(
        "--name", help="how the output names the policy, e.g. its path (default: OLD -> NEW)"
    )
    diff.add_argument(
        "--summary",
        type=Path,
        metavar="FILE",
        help="append a Markdown table to FILE (default: $GITHUB_STEP_SUMMARY when set)",
    )
    diff.add_argument(
        "--fail-on-widen", action="store_true", help="exit 2 when the change widens access"
    )
    diff.set_defaults(handler=run_diff)


def run_diff(args: argparse.Namespace) -> int:
    try:
        old, new = _load(args.old), _load(args.new)
        changes = diff_policies(old, new)
    except (PolicyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    name = args.name or f"{args.old} -> {args.new}"
    print(f"policy diff {name}")
    for change in changes:
        print(f"{change.kind:<9}{_subject(change)}: {change.detail}")
    verdict = _verdict(changes)
    print(verdict)
    summary = args.summary or (
        Path(os.environ["GITHUB_STEP_SUMMARY"]) if os.environ.get("GITHUB_STEP_SUMMARY") else None
    )
    if summary is not None:
        try:
            with summary.open("a", encoding="utf-8") as handle:
                handle.write(markdown(name, changes, verdict))
        except OSError as exc:
            print(f"error: cannot write the summary {summary}: {exc.strerror}", file=sys.stderr)
            return 1
    widened = any(change.kind == "widened" for change in changes)
    return 2 if args.fail_on_widen and widened else 0


def markdown(name: str, changes: list[Change], verdict: str) -> str:
    """The job-summary section: a heading, the verdict and a table of the changes."""
    lines = [f"### Policy diff: {_cell(name)}", "", _cell(verdict), ""]
    if changes:
        lines += ["| change | connector | rule | what |", "|---|---|---|---|"]
        for change in changes:
            cells = (change.kind, change.connector or "(policy)", change.rule, change.detail)
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _load(path: Path) -> RepositoryPolicy | OrgPolicy | None:
    try:
        if path.stat().st_size == 0:
            return None  # no policy (also /dev/null): no access
    except OSError:
        pass  # load_policy_file says what is wrong
    return load_policy_file(path)


def _subject(change: Change) -> str:
    if not change.connector:
        return "the policy"
    rule = f" rule {change.rule}" if change.rule and change.rule != "cap" else ""
    rule = " cap" if change.rule == "cap" else rule
    where = f" (line {change.line})" if change.line else ""
    return f"{change.connector}{rule}{where}"


def _verdict(changes: list[Change]) -> str:
    if not changes:
        return "no change in access"
    counts = {kind: sum(c.kind == kind for c in changes) for kind in ("widened", "narrowed")}
    counts["changed"] = len(changes) - counts["widened"] - counts["narrowed"]
    shown = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    if counts["widened"]:
        return f"access widens ({shown})"
    if counts["changed"]:
        return f"access changes: review the changed conditions ({shown})"
    return f"access narrows ({shown})"


def _cell(text: str) -> str:
    """Text from a policy file as one Markdown table cell (no HTML, no breaking out)."""
    cleaned = neutralize(text, limit=300).replace("\\", "\\\\")
    for markup in "|*_[]":  # table cells, emphasis, links: shown as typed
        cleaned = cleaned.replace(markup, "\\" + markup)
    return cleaned.replace("`", "'").replace("<", "&lt;").replace(">", "&gt;")
