"""`tests/support/dev.py act WORKFLOW`: a user's own workflow, run with act against the
fake issuer, with the action mapped from a copy of this clone (docs/local-runs.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobtoken.wire.unverified_claims import unverified_claims
from support.act import PROJECT_ROOT
from support.fake_broker import FakeBroker
from support.local_act import action_uses, permission_warnings, runner_labels
from support.oidc_issuer import DEFAULT_CLAIMS

DEV_SCRIPT = PROJECT_ROOT / "tests" / "support" / "dev.py"
SHA = "f2073383ec7573775e15ff88496af56063a77743"
#: a user's workflow as they would write it: their owner, a pinned SHA, job permissions
WORKFLOW = f"""\
name: sync
on: push
permissions: {{}}
jobs:
  sync:
    runs-on: ubuntu-22.04
    permissions:
      id-token: write
    steps:
      - id: hubspot
        uses: acme/jobtoken@{SHA} # v1
        with:
          broker-url: ${{{{ vars.BROKER_URL }}}}
          connector: hubspot
          scopes: crm.read
      - run: test -n "$TOKEN" && echo "the next step has a token of ${{#TOKEN}} characters"
        env:
          TOKEN: ${{{{ steps.hubspot.outputs.token }}}}
      - if: always()
        uses: acme/jobtoken/revoke@{SHA} # v1
        with:
          broker-url: ${{{{ vars.BROKER_URL }}}}
          token: ${{{{ steps.hubspot.outputs.token }}}}
"""


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    with FakeBroker() as fake:
        yield fake


def run_dev_act(repo: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(DEV_SCRIPT),
            "act",
            ".github/workflows/sync.yml",
            "--repo",
            str(repo),
            "--issuer-port",
            "0",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def user_repository(tmp_path: Path, workflow: str) -> Path:
    repo = tmp_path / "app"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "sync.yml").write_text(workflow)
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "workflow"], cwd=repo, check=True)
    return repo


@pytest.mark.act  # run_dev_act runs act through tests/support/dev.py
def test_a_users_workflow_runs_with_the_fake_issuer_and_its_claims(
    tmp_path: Path, broker: FakeBroker
) -> None:
    repo = user_repository(tmp_path, WORKFLOW)
    claims_file = tmp_path / "claims.json"
    claims_file.write_text(json.dumps({"repository": "acme/app", "ref": "refs/heads/dev"}))

    result = run_dev_act(repo, "--claims", str(claims_file), "--var", f"BROKER_URL={broker.url}")

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.startswith("note: act ignores `permissions:`")
    assert "warning: job" not in result.stderr  # the job has id-token: write
    assert "🏁  Job succeeded" in result.stdout
    assert "the next step has a token of" in result.stdout
    (token,) = broker.issued
    assert token not in result.stdout + result.stderr
    assert broker.revoked == [token]
    exchange = broker.requests_to("/token")[0]
    claims = unverified_claims(exchange.form["subject_token"])
    assert claims["repository"] == "acme/app"  # from --claims
    assert claims["sub"] == "repo:acme/app:ref:refs/heads/dev"  # derived again
    assert claims["actor"] == DEFAULT_CLAIMS["actor"]  # the other defaults stay
    assert claims["aud"] == broker.url


@pytest.mark.act  # run_dev_act runs act through tests/support/dev.py
def test_a_job_without_id_token_write_is_warned_about(tmp_path: Path, broker: FakeBroker) -> None:
    repo = user_repository(
        tmp_path, WORKFLOW.replace("      id-token: write\n", "      contents: read\n")
    )

    result = run_dev_act(repo, "--var", f"BROKER_URL={broker.url}")

    assert result.returncode == 0, result.stdout + result.stderr  # act gives it a token anyway
    assert "warning: job sync uses the action without `id-token: write`" in result.stderr


def test_action_uses_finds_every_owner_and_ref_once() -> None:
    assert action_uses(WORKFLOW) == [f"acme/jobtoken@{SHA}"]
    assert action_uses(WORKFLOW, "acme/jobtoken") == [f"acme/jobtoken@{SHA}"]
    assert action_uses(WORKFLOW, "other/jobtoken") == []
    assert action_uses("steps:\n  - uses: actions/checkout@v4\n") == []


def test_permissions_are_read_at_job_level_then_workflow_level() -> None:
    job_level = WORKFLOW.replace("permissions: {}\n", "permissions: write-all\n", 1)
    assert permission_warnings(job_level) == []
    workflow_only = WORKFLOW.replace("    permissions:\n      id-token: write\n", "")
    assert len(permission_warnings(workflow_only)) == 1
    granted = workflow_only.replace("permissions: {}\n", "permissions: { id-token: write }\n")
    assert permission_warnings(granted) == []


def test_every_runs_on_label_runs_on_the_host() -> None:
    assert runner_labels(WORKFLOW) == ["ubuntu-latest", "ubuntu-22.04"]
