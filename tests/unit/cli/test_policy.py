"""`jobtoken policy check` and `jobtoken policy explain`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobtoken.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "policies"
CLAIMS = {
    "repository": "octo-org/octo-repo",
    "repository_id": "690001234",
    "repository_owner": "octo-org",
    "repository_owner_id": "90001234",
    "ref": "refs/heads/main",
    "event_name": "schedule",
    "job_workflow_ref": "octo-org/octo-repo/.github/workflows/sync.yml@refs/heads/main",
    "runner_environment": "github-hosted",
}


def test_check_accepts_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(EXAMPLES / "repository.yml"), str(EXAMPLES / "organization.yml")]
    assert main(["policy", "check", *files]) == 0
    out = capsys.readouterr().out
    assert "repository policy of octo-org/octo-repo, 3 rules" in out
    assert "organization policy of octo-org, 2 connectors" in out


def test_check_reports_every_invalid_file_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 1\non: push\n")
    aliased = tmp_path / "aliased.yml"
    aliased.write_text("a: &x 1\nb: *x\n")
    good = EXAMPLES / "repository.yml"
    assert main(["policy", "check", str(bad), str(good), str(aliased)]) == 1
    captured = capsys.readouterr()
    assert f"{bad}:2: unknown key 'on'" in captured.err
    assert f"{aliased}:1: YAML anchors" in captured.err
    assert "repository.yml: ok" in captured.out


def test_check_in_github_actions_writes_escaped_annotations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    bad = tmp_path / "odd,name:x.yml"
    bad.write_text('version: 1\n"evil\\n::set-env name=X::y": 1\n')
    assert main(["policy", "check", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, "the message cannot break onto a new line"
    escaped = str(bad).replace(":", "%3A").replace(",", "%2C")
    assert lines[0].startswith(f"::error file={escaped},line=2::unknown key ")


def test_check_missing_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(tmp_path / "nope.yml")]) == 1
    assert "cannot read the file" in capsys.readouterr().err


def explain(tmp_path: Path, claims: dict[str, str], *extra: str) -> list[str]:
    claims_file = tmp_path / "claims.json"
    claims_file.write_text(json.dumps(claims))
    return [
        "policy", "explain", "--policy", str(EXAMPLES / "repository.yml"),
        "--claims", str(claims_file), *extra,
    ]  # fmt: skip


def test_explain_shows_the_granting_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = explain(
        tmp_path, CLAIMS, "--connector", "hubspot", "--scopes", "crm.objects.contacts.read"
    )
    assert main([*args, "--ttl", "3600"]) == 0
    out = capsys.readouterr().out
    assert "decision: allowed" in out
    assert "max ttl: 900 s" in out
    assert "connectors.hubspot[0] 'nightly-contact-sync'" in out


def test_explain_shows_why_each_rule_did_not_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    claims = {**CLAIMS, "ref": "refs/heads/release-1/x", "event_name": "push"}
    args = explain(
        tmp_path, claims, "--connector", "hubspot", "--scopes", "crm.objects.contacts.read"
    )
    assert main([*args, "--org-policy", str(EXAMPLES / "organization.yml")]) == 1
    out = capsys.readouterr().out
    assert "decision: denied (conditions_not_met)" in out
    assert "oauth error: unauthorized_client" in out
    assert "'nightly-contact-sync'" in out
    assert "needs ref 'refs/heads/main'" in out
    assert "needs ref 'refs/heads/release-*'" in out


def test_explain_org_cap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = explain(
        tmp_path, CLAIMS, "--connector", "hubspot", "--scopes", "crm.objects.contacts.read"
    )
    org = ["--org-policy", str(EXAMPLES / "organization.yml")]
    assert main([*args, *org, "--ttl", "7200"]) == 0
    assert "max ttl: 900 s" in capsys.readouterr().out
    claims = {**CLAIMS, "runner_environment": "self-hosted"}
    scopes = ["--connector", "hubspot", "--scopes", "crm.objects.contacts.read"]
    self_hosted = explain(tmp_path, claims, *scopes)
    assert main([*self_hosted, *org]) == 1
    assert "denied (org_conditions_not_met)" in capsys.readouterr().out


def test_explain_refuses_unusable_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    claims_file = tmp_path / "claims.json"
    claims_file.write_text('{"repository": "a/b", "repository": "c/d"}')
    args = ["policy", "explain", "--policy", str(EXAMPLES / "repository.yml"),
            "--claims", str(claims_file), "--connector", "hubspot", "--scopes", "x"]  # fmt: skip
    assert main(args) == 2
    assert "repeats a key" in capsys.readouterr().err
    swapped = ["policy", "explain", "--policy", str(EXAMPLES / "organization.yml"),
               "--claims", str(claims_file), "--connector", "hubspot", "--scopes", "x"]  # fmt: skip
    assert main(swapped) == 2
