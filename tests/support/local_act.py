"""Run a user's own workflow with act on this host, with the fake issuer and this clone's action.

What ``tests/support/dev.py act WORKFLOW`` does (docs/local-runs.md):

- every ``uses: <owner>/jobtoken@REF`` and ``<owner>/jobtoken/revoke@REF`` of the
  workflow resolves, through ``--local-repository``, to a fresh copy of what the
  action ships (``support.act.copy_action_tree``): never the clone itself, whose
  ``.venv`` act would copy for every action step;
- the job's ``ACTIONS_ID_TOKEN_REQUEST_*`` variables point at a running
  ``FakeOidcIssuer``, and GitHub's default variables and the event agree with
  its claims;
- each ``runs-on`` label runs on the host (``-P LABEL=-self-hosted``: no Docker);
- act ignores ``permissions:``, so every job gets an ID token here;
  `permission_warnings` says which jobs would get none on GitHub.

act prints its usual log (not ``--json``); its exit status is returned.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from support.act import (
    act_process_env,
    copy_action_tree,
    event_payload,
    find_act,
    github_env,
)
from support.oidc_issuer import FakeOidcIssuer

__all__ = ["ACT_IGNORES_PERMISSIONS", "action_uses", "permission_warnings", "run_local"]

ACT_IGNORES_PERMISSIONS = (
    "note: act ignores `permissions:`; here every job gets an ID token. On GitHub a job "
    "gets one only with `permissions: id-token: write` (at job or workflow level)."
)
#: ``uses: OWNER/REPO@REF`` or ``OWNER/REPO/sub/action@REF``; REPO is checked by the caller
_USES = re.compile(
    r"""\buses["']?\s*:\s*["']?(?P<repository>[\w.-]+/[\w.-]+?)(?:/[\w./-]+)?@(?P<ref>[\w./-]+)"""
)


def action_uses(workflow: str, repository_name: str = "jobtoken") -> list[str]:
    """``OWNER/NAME@REF`` for every use of the action (or its sub-actions), in order.

    ``repository_name`` is the action's repository: ``jobtoken``, or a fork's
    ``OWNER/NAME`` when the owner matters. act resolves ``OWNER/NAME/revoke@REF``
    inside the folder mapped to ``OWNER/NAME@REF``, so one entry per ref covers both.
    """
    found: list[str] = []
    for match in _USES.finditer(workflow):
        repository = match["repository"]
        wanted = repository if "/" in repository_name else repository.split("/", 1)[1]
        if wanted != repository_name:
            continue
        entry = f"{repository}@{match['ref']}"
        if entry not in found:
            found.append(entry)
    return found


def permission_warnings(workflow: str, repository_name: str = "jobtoken") -> list[str]:
    """One line per job that uses the action without ``id-token: write`` in effect."""
    document = yaml.safe_load(workflow)
    if not isinstance(document, dict):
        return []
    top = document.get("permissions")
    warnings = []
    for job_id, job in (document.get("jobs") or {}).items():
        if not isinstance(job, dict):
            continue
        steps = job.get("steps") or []
        uses_action = any(
            isinstance(step, dict) and action_uses(f"uses: {step.get('uses', '')}", repository_name)
            for step in steps
        )
        if uses_action and not _grants_id_token(job.get("permissions", top)):
            warnings.append(
                f"warning: job {job_id} uses the action without `id-token: write` in its "
                "`permissions:` (or the workflow's): it works under act, but on GitHub the "
                "exchange fails with `no OIDC ID token`"
            )
    return warnings


def run_local(
    workflow: Path,
    *,
    repo: Path,
    issuer: FakeOidcIssuer,
    event_name: str = "push",
    env: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    repository_name: str = "jobtoken",
    extra_args: Sequence[str] = (),
) -> int:
    """Run ``workflow`` (a file inside ``repo``) with act; act's exit status."""
    text = workflow.read_text()
    act = find_act()
    with tempfile.TemporaryDirectory(prefix="jobtoken-local-act-") as tmp:
        root = Path(tmp)
        action_root = copy_action_tree(root / "action")
        event_path = root / "event.json"
        event_path.write_text(json.dumps(event_payload(issuer.claims)))
        job_env = {
            **github_env(issuer.claims, event_name),
            **(env or {}),
            **issuer.runner_env(),
        }
        argv = [act, event_name, "-W", str(workflow.resolve()), "--eventpath", str(event_path)]
        argv += ["--actor", str(issuer.claims.get("actor", "octocat"))]
        for label in runner_labels(text):
            argv += ["-P", f"{label}=-self-hosted"]
        for entry in action_uses(text, repository_name):
            argv += ["--local-repository", f"{entry}={action_root}"]
        for option, values in (("--env", job_env), ("--var", variables), ("--secret", secrets)):
            for name, value in (values or {}).items():
                argv += [option, f"{name}={value}"]
        argv += list(extra_args)
        return subprocess.run(argv, cwd=repo, env=act_process_env(root), check=False).returncode


def runner_labels(workflow: str) -> list[str]:
    """Every ``runs-on`` label of the workflow (``ubuntu-latest`` always)."""
    labels = ["ubuntu-latest"]
    document = yaml.safe_load(workflow)
    jobs = document.get("jobs", {}) if isinstance(document, dict) else {}
    for job in jobs.values():
        runs_on: Any = job.get("runs-on") if isinstance(job, dict) else None
        names = [runs_on] if isinstance(runs_on, str) else runs_on
        for name in names if isinstance(names, list) else []:
            if isinstance(name, str) and "${{" not in name and name not in labels:
                labels.append(name)
    return labels


def _grants_id_token(permissions: object) -> bool:
    if permissions == "write-all":
        return True
    return isinstance(permissions, dict) and permissions.get("id-token") == "write"
