"""`make lint` for the composite actions' `run:` scripts (actionlint reads workflows only).

    .venv/bin/python tests/support/lint_actions.py action.yml revoke/action.yml

Every `run:` of a composite action's steps must hold no `${{ }}` expression
(inputs reach the script through `env:`) and, where `shellcheck` is on PATH,
pass `shellcheck --shell=bash` (or `sh`). Without shellcheck it says the
shellcheck part was skipped. Exit status 1 on any finding.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def check(path: Path, shellcheck: str | None) -> list[str]:
    metadata: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    findings: list[str] = []
    for index, step in enumerate(metadata.get("runs", {}).get("steps") or []):
        if not isinstance(step, dict) or "run" not in step:
            continue
        where = f"{path}: step {step.get('id') or step.get('name') or index}"
        script = str(step["run"])
        if "${{" in script:
            findings.append(f"{where}: `${{{{ }}}}` in run: (pass it through env: instead)")
        shell = str(step.get("shell", ""))
        if shellcheck is None or shell not in ("bash", "sh"):
            continue
        proc = subprocess.run(
            [shellcheck, f"--shell={shell}", "-"],
            input=script,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            findings.append(f"{where}: shellcheck:\n{proc.stdout.rstrip()}")
    return findings


def main(argv: list[str]) -> int:
    shellcheck = shutil.which("shellcheck")
    findings = [finding for name in argv for finding in check(Path(name), shellcheck)]
    for finding in findings:
        print(finding)
    if shellcheck is None:
        print("shellcheck not found: shellcheck checks of the actions' run: scripts skipped")
    print(f"{len(argv)} action file(s), {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
