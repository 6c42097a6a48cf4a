"""Every ``bench/`` script runs end to end in its ``--smoke`` mode (a few runs, seconds)
and prints its report's header: a benchmark that no longer runs fails ``make test``,
not ``make bench``. Only the shape is checked; smoke figures mean nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
BENCH = ROOT / "bench"

#: script -> a line of the report's header (its table's column names or title)
HEADERS = {
    "action_overhead.py": "  action exchange, cold (no __pycache__)",
    "broker_token.py": "call                                         rate            p50",
    "broker_vs_openbao.py": "| Configuration | Cores | Requests/s | p50 (ms) | p99 (ms) |",
    "id_token_verify.py": "tokens, best of 3 rounds, CPU time per call:",
    "proxy_overhead.py": "| path | clients | requests | errors | req/s | p50 ms | p99 ms |",
    "store_growth.py": "store                                        commit latency",
}
#: modules the scripts import, not scripts
HELPERS = {"id_tokens.py", "jobtoken_servers.py", "openbao_jwt.py", "smoke.py", "wrk.py"}


def test_every_bench_script_has_a_smoke_run() -> None:
    scripts = {p.name for p in BENCH.glob("*.py")} - HELPERS
    assert scripts == set(HEADERS)


@pytest.mark.parametrize("script", sorted(HEADERS))
def test_a_bench_script_runs_in_smoke_mode_and_prints_its_table(script: str) -> None:
    if script == "broker_vs_openbao.py" and shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install -y wrk): its smoke run needs it")
    paths = [str(ROOT / "src"), str(ROOT / "tests")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke"],
        capture_output=True, text=True, timeout=120, check=False, env=env, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(HEADERS[script] in line for line in lines), done.stdout[-2000:]
