"""`jobtoken policy diff`, run in this process (``support.in_process``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from support.in_process import run_cli

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "policies"


def run_diff(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return run_cli(["policy", "diff", *args], env={**base, **(env or {})}, text=True)


def widened_copy(tmp_path: Path) -> tuple[Path, Path]:
    old = EXAMPLES / "repository.yml"
    text = old.read_text()
    new = tmp_path / "new.yml"
    new.write_text(
        text.replace(
            "        - crm.objects.contacts.write\n",
            "        - crm.objects.contacts.write\n        - crm.objects.deals.read\n",
        )
        .replace("      max_ttl: 300\n", "      max_ttl: 60\n")
        .replace("        runner_environment: github-hosted\n", "")
        .replace('"refs/heads/release-*"', '"refs/heads/*"')
    )
    return old, new


def test_diff_says_in_words_what_widens_and_narrows(tmp_path: Path) -> None:
    old, new = widened_copy(tmp_path)
    result = run_diff(str(old), str(new))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"policy diff {old} -> {new}",
        "widened  hubspot rule 'nightly-contact-sync' (line 28): now grants the scope "
        "crm.objects.deals.read",
        "widened  hubspot rule 'nightly-contact-sync' (line 28): no longer requires "
        "runner_environment 'github-hosted'",
        "narrowed hubspot rule 'read-only-from-release-branches' (line 41): max_ttl lowered "
        "from 300 s to 60 s",
        "widened  hubspot rule 'read-only-from-release-branches' (line 45): ref was "
        "'refs/heads/release-*', now 'refs/heads/*'",
        "access widens (3 widened, 1 narrowed)",
    ]


def test_fail_on_widen_exits_2_and_only_when_access_widens(tmp_path: Path) -> None:
    old, new = widened_copy(tmp_path)
    assert run_diff(str(old), str(new), "--fail-on-widen").returncode == 2
    shorter = tmp_path / "shorter.yml"
    shorter.write_text(old.read_text().replace("max_ttl: 15m", "max_ttl: 5m"))
    narrowed = run_diff(str(old), str(shorter), "--fail-on-widen")
    assert narrowed.returncode == 0
    assert narrowed.stdout.splitlines()[-1] == "access narrows (1 narrowed)"
    same = run_diff(str(old), str(old), "--fail-on-widen")
    assert (same.returncode, same.stdout.splitlines()[-1]) == (0, "no change in access")


def test_summary_table_goes_to_the_file_or_the_job_summary(tmp_path: Path) -> None:
    old, new = widened_copy(tmp_path)
    summary = tmp_path / "summary.md"
    assert run_diff(str(old), str(new), "--summary", str(summary)).returncode == 0
    table = summary.read_text()
    assert table.startswith(
        f"### Policy diff: {old} -&gt; {new}\n\naccess widens (3 widened, 1 narrowed)\n".replace(
            "_", "\\_"
        )
    )
    assert "| change | connector | rule | what |\n|---|---|---|---|\n" in table
    assert (
        "| widened | hubspot | 'nightly-contact-sync' | now grants the scope "
        "crm.objects.deals.read |"
    ) in table
    assert (
        "| widened | hubspot | 'read-only-from-release-branches' | ref was "
        "'refs/heads/release-\\*', now 'refs/heads/\\*' |"
    ) in table
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("earlier step\n")
    result = run_diff(str(old), str(new), env={"GITHUB_STEP_SUMMARY": str(step_summary)})
    assert result.returncode == 0
    assert step_summary.read_text() == "earlier step\n" + table


def test_name_names_the_policy_in_the_words_and_the_table(tmp_path: Path) -> None:
    old, new = widened_copy(tmp_path)
    summary = tmp_path / "summary.md"
    args = ("--name", "policies/octo-org/octo-repo.yml", "--summary", str(summary))
    result = run_diff(str(old), str(new), *args)
    assert result.stdout.splitlines()[0] == "policy diff policies/octo-org/octo-repo.yml"
    assert summary.read_text().startswith("### Policy diff: policies/octo-org/octo-repo.yml\n")


def test_a_policy_cell_cannot_break_the_table(tmp_path: Path) -> None:
    old = tmp_path / "old.yml"
    old.write_text(
        'version: 1\nrepository: o/r\nrepository_id: "1"\nconnectors:\n  hubspot:\n'
        "    - scopes: [a]\n      max_ttl: 60\n      when:\n        actor: x\n"
    )
    new = tmp_path / "new.yml"
    new.write_text(old.read_text().replace("actor: x", 'actor: "a|b<img src=x>`c"'))
    summary = tmp_path / "summary.md"
    assert run_diff(str(old), str(new), "--summary", str(summary)).returncode == 0
    row = summary.read_text().splitlines()[-2]
    assert row == ("| changed | hubspot | #0 | actor was 'x', now 'a\\|b&lt;img src=x&gt;'c' |")


def test_a_new_policy_file_is_all_new_access_and_invalid_files_fail(tmp_path: Path) -> None:
    added = run_diff("/dev/null", str(EXAMPLES / "repository.yml"), "--fail-on-widen")
    assert added.returncode == 2
    assert "widened  hubspot: new connector" in added.stdout
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 1\n")
    broken = run_diff(str(bad), str(EXAMPLES / "repository.yml"))
    assert broken.returncode == 1
    assert f"error: {bad}:1: the policy needs the key 'connectors'" in broken.stderr
    mixed = run_diff(str(EXAMPLES / "organization.yml"), str(EXAMPLES / "repository.yml"))
    assert mixed.returncode == 1
    assert "one file is a repository policy, the other an organization policy" in mixed.stderr
