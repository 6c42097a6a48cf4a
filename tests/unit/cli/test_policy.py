"""`jobtoken policy check` and `jobtoken policy explain`, run in this process
(``main``, or ``support.in_process`` where a test reads stdout and stderr apart)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from jobtoken.broker.audit.chain import AUDITED_CLAIMS as BROKER_AUDITED_CLAIMS
from jobtoken.cli import main
from jobtoken.cli.policy import AUDITED_CLAIMS, annotation
from support.in_process import run_cli

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
    escaped = str(bad).replace(":", "%3A").replace(",", "%2C")
    assert all(line.startswith(f"::error file={escaped},line=") for line in lines)
    assert len(lines) == 4, "missing repository, repository_id, connectors; the unknown key"
    [unknown] = [line for line in lines if "unknown key" in line]
    assert unknown.startswith(f"::error file={escaped},line=2::unknown key ")
    assert "::set-env" not in unknown.split("::", 2)[2], "no '::' left in the message"


def run_policy(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return run_cli(["policy", *args], env={**base, **(env or {})}, cwd=cwd, text=True)


FOUR_MISTAKES = """\
version: 1
repository: octo-org/app
repository_id: 690001234
connectors:
  hubspot:
    - scopes: [contacts.read]
      max_ttl: 2d
      when:
        branch: main
        event_name: [push, 7]
"""


def test_check_reports_every_error_of_a_file_in_one_run(tmp_path: Path) -> None:
    (tmp_path / "jobtoken.yml").write_text(FOUR_MISTAKES)
    result = run_policy("check", "jobtoken.yml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        'error: jobtoken.yml:3: repository_id must be a quoted string of digits, e.g. "690001234"',
        "error: jobtoken.yml:7: connectors.hubspot[0].max_ttl must be seconds or a duration "
        "like 90s, 15m, 1h or 1h30m",
        "error: jobtoken.yml:9: unknown claim 'branch' in connectors.hubspot[0].when (known: "
        "actor, actor_id, base_ref, enterprise, enterprise_id, environment, event_name, "
        "head_ref, job_workflow_ref, job_workflow_sha, ref, ref_protected, ref_type, "
        "repository_visibility, runner_environment, sha, sub, workflow, workflow_ref, "
        "workflow_sha)",
        "error: jobtoken.yml:10: connectors.hubspot[0].when.event_name must be a string (quote it)",
        "jobtoken.yml: invalid (4 errors)",
    ]


def test_a_max_ttl_of_5000_digits_is_reported_not_a_traceback(tmp_path: Path) -> None:
    # int() of more than 4,300 digits raises ValueError
    text = FOUR_MISTAKES.replace("690001234", '"690001234"').replace("2d", "1" * 5000)
    (tmp_path / "jobtoken.yml").write_text(text.split("      when:")[0])
    result = run_policy("check", "jobtoken.yml", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "error: jobtoken.yml:7: connectors.hubspot[0].max_ttl must be between 1 s and 86400 s",
        "jobtoken.yml: invalid (1 error)",
    ]


def test_check_in_github_actions_annotates_every_error_and_warning(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text(FOUR_MISTAKES)
    broad = (
        EXAMPLES.joinpath("repository.yml")
        .read_text()
        .replace("event_name: pull_request_target", 'event_name: "*"')
    )
    (tmp_path / "broad.yml").write_text(broad)
    result = run_policy(
        "check", "bad.yml", "broad.yml", env={"GITHUB_ACTIONS": "true"}, cwd=tmp_path
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert [line.split("::")[1] for line in lines[:4]] == [
        "error file=bad.yml,line=3",
        "error file=bad.yml,line=7",
        "error file=bad.yml,line=9",
        "error file=bad.yml,line=10",
    ]
    assert lines[4].startswith(
        "::warning file=broad.yml,line=57::connectors.slack[0].when.event_name: '*' matches "
        "every event"
    )
    assert lines[5] == "broad.yml: ok (repository policy of octo-org/octo-repo, 3 rules, 1 warning)"


def test_a_file_of_many_mistakes_prints_a_bounded_report(tmp_path: Path) -> None:
    policy = tmp_path / "many.yml"
    policy.write_text("".join(f"key{n}: 1\n" for n in range(150)))
    result = run_policy("check", str(policy))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 102
    assert lines[-2:] == [f"error: {policy}: 54 more errors", f"{policy}: invalid (154 errors)"]


def test_warnings_alone_exit_0(tmp_path: Path) -> None:
    policy = tmp_path / "open.yml"
    policy.write_text(
        'version: 1\nrepository: o/r\nrepository_id: "1"\nconnectors:\n'
        "  hubspot:\n    - scopes: [a]\n      max_ttl: 2h\n"
    )
    result = run_policy("check", str(policy))
    assert result.returncode == 0, result.stderr
    assert f"warning: {policy}:6: connectors.hubspot[0] has no conditions" in result.stderr
    assert f"warning: {policy}:6: connectors.hubspot[0].max_ttl is 7200 s" in result.stderr
    assert result.stdout == f"{policy}: ok (repository policy of o/r, 1 rule, 2 warnings)\n"


@pytest.mark.parametrize(
    "message",
    ["a\nb", "50% done", "x::set-env name=A::b", "cr\rlf", "%0A::stop-commands::t"],
)
def test_an_annotation_is_one_command_whatever_its_message(message: str) -> None:
    line = annotation("error", "dir/a,b:c.yml", 4, message)
    assert "\n" not in line
    assert "\r" not in line
    head, _, text = line.partition("::")[2].partition("::")
    assert head == "error file=dir/a%2Cb%3Ac.yml,line=4"
    assert "::" not in text
    assert "%" not in text.replace("%25", "")
    # what the runner shows once it unescapes the message: the text, never a command
    shown = text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")
    assert "\n" not in shown
    assert "::" not in shown


def test_audited_claims_are_the_audit_trails_own() -> None:
    assert frozenset(BROKER_AUDITED_CLAIMS) == AUDITED_CLAIMS


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


PROTECTED = """\
version: 1
repository: octo-org/octo-repo
repository_id: "690001234"
connectors:
  hubspot:
    - name: protected-only
      scopes: [crm.objects.contacts.read]
      max_ttl: 15m
      when:
        ref_protected: "true"
        actor: octocat
        environment: production
"""


def test_explain_names_the_claims_the_input_lacks_and_what_the_audit_keeps(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "jobtoken.yml"
    policy.write_text(PROTECTED)
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps(CLAIMS))  # as copied from an audit record: no ref_protected
    scopes = ["--connector", "hubspot", "--scopes", "crm.objects.contacts.read"]
    result = run_policy("explain", "--policy", str(policy), "--claims", str(claims), *scopes)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "decision: denied (conditions_not_met)"
    assert lines[3] == (
        f"  - connectors.hubspot[0] 'protected-only' ({policy} line 6): not applicable, "
        "needs ref_protected 'true' (line 10), but the claim ref_protected is missing"
    )
    assert lines[4:] == [
        "missing claim: actor is not in the input; the audit trail does not keep it "
        "(conditioned on by connectors.hubspot[0] line 11)",
        "missing claim: environment is not in the input (conditioned on by "
        "connectors.hubspot[0] line 12)",
        "missing claim: ref_protected is not in the input; the audit trail does not keep it "
        "(conditioned on by connectors.hubspot[0] line 10)",
    ]
    full = {**CLAIMS, "ref_protected": "true", "actor": "octocat", "environment": "production"}
    claims.write_text(json.dumps(full))
    allowed = run_policy("explain", "--policy", str(policy), "--claims", str(claims), *scopes)
    assert allowed.returncode == 0
    assert "missing claim" not in allowed.stdout


def test_check_of_a_tab_indented_file_says_to_indent_with_spaces(tmp_path: Path) -> None:
    (tmp_path / "jobtoken.yml").write_text(FOUR_MISTAKES.replace("    - scopes", "\t- scopes"))
    done = run_policy("check", str(tmp_path / "jobtoken.yml"))
    assert done.returncode == 1
    assert (
        f"{tmp_path / 'jobtoken.yml'}:6: not valid YAML: a tab character (column 1): YAML "
        "does not allow tabs there; indent with spaces"
    ) in done.stderr
    assert "\\t" not in done.stderr


@pytest.mark.parametrize(("ttl", "seconds"), [("2h", 900), ("5m", 300), ("600", 600)])
def test_explain_takes_the_ttl_as_a_duration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ttl: str, seconds: int
) -> None:
    args = explain(
        tmp_path, CLAIMS, "--connector", "hubspot", "--scopes", "crm.objects.contacts.read"
    )
    assert main([*args, "--ttl", ttl]) == 0
    assert f"max ttl: {seconds} s" in capsys.readouterr().out


def test_explain_refuses_a_ttl_that_is_not_a_duration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = explain(tmp_path, CLAIMS, "--connector", "hubspot", "--scopes", "x")
    with pytest.raises(SystemExit):
        main([*args, "--ttl", "2 hours"])
    assert "'2 hours' is not a duration" in capsys.readouterr().err
