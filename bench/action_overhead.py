"""Wall time of one exchange by the action, beside Node.js doing the same HTTP exchange.

    .venv/bin/python bench/action_overhead.py [--runs 25] [--python python3] [--node node]

Measures, interleaved so that noise on this shared machine hits all alike:

- action: the exact command action.yml runs (`python3 -I -S -c <bootstrap> src exchange`),
  from process start to exit (outputs written), against a loopback fake runner
  token endpoint and a loopback fake RFC 8693 broker, with the action's
  `__pycache__` already written (a second step of the same job);
- action, cold: the same, from a fresh copy of the action's source without any
  `__pycache__` (a GitHub runner downloads the action for every job, so its
  first step compiles the action's modules), copied before the clock starts;
- node: a minimal Node.js script doing the same two requests with `fetch`
  (ID token GET, token-exchange form POST), masking and writing the output file;
- urllib: a throwaway standard-library client (urllib.request) doing the same
  two requests, the reference the "<= 3x bare" target was set from;
- bare: `python3 -S -I -c pass`, the interpreter start alone.

Prints the medians and the ratios against the targets (action <= 0.75 x node,
<= 3 x bare; the targets are for the warm figure). A benchmark, not a test:
nothing here fails the suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from smoke import smoke_args

from support.fake_broker import FakeBroker
from support.oidc_issuer import FakeOidcIssuer

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from jobtoken.action.__main__ import main; sys.exit(main(sys.argv[2:]))"
)
NODE_SCRIPT = r"""
const fs = require("fs");
(async () => {
  const env = process.env;
  const url = env.ACTIONS_ID_TOKEN_REQUEST_URL + "&audience="
    + encodeURIComponent(env.INPUT_BROKER_URL);
  const auth = { Authorization: "bearer " + env.ACTIONS_ID_TOKEN_REQUEST_TOKEN };
  const idResponse = await fetch(url, { headers: auth });
  const idToken = (await idResponse.json()).value;
  console.log("::add-mask::" + idToken);
  const form = new URLSearchParams({
    grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
    subject_token: idToken,
    subject_token_type: "urn:ietf:params:oauth:token-type:id_token",
    requested_token_type: "urn:ietf:params:oauth:token-type:access_token",
    resource: env.INPUT_CONNECTOR, scope: env.INPUT_SCOPES, ttl: "900",
  });
  const response = await fetch(env.INPUT_BROKER_URL + "/token", { method: "POST", body: form });
  const body = await response.json();
  if (response.status !== 200 || typeof body.access_token !== "string") process.exit(1);
  console.log("::add-mask::" + body.access_token);
  fs.appendFileSync(env.GITHUB_OUTPUT, `token<<EOF_X\n${body.access_token}\nEOF_X\n`);
})().catch(() => process.exit(1));
"""

#: The reference the "<= 3x bare" target came from: a throwaway standard-library
#: client (urllib.request) doing the same two requests, masking and writing the
#: output, with none of the action's validation, checks, retries or summary.
URLLIB_SCRIPT = r"""
import json, os, urllib.parse, urllib.request
env = os.environ
url = (env["ACTIONS_ID_TOKEN_REQUEST_URL"] + "&audience="
       + urllib.parse.quote(env["INPUT_BROKER_URL"], safe=""))
auth = {"Authorization": "bearer " + env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]}
with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=10) as r:
    id_token = json.load(r)["value"]
print("::add-mask::" + id_token)
form = urllib.parse.urlencode({
    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
    "subject_token": id_token,
    "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
    "resource": env["INPUT_CONNECTOR"], "scope": env["INPUT_SCOPES"], "ttl": "900",
}).encode()
request = urllib.request.Request(env["INPUT_BROKER_URL"] + "/token", data=form)
with urllib.request.urlopen(request, timeout=10) as r:
    token = json.load(r)["access_token"]
print("::add-mask::" + token)
with open(env["GITHUB_OUTPUT"], "a") as output:
    output.write("token<<EOF_X\n" + token + "\nEOF_X\n")
"""


def real_python(name: str) -> str:
    """The interpreter itself, not a version-manager shim that would add its own start-up."""
    found = shutil.which(name) or name
    probe = [found, "-c", "import sys; print(sys.executable)"]
    return subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()


def fresh_action_copy(parent: Path) -> Path:
    """A new `src` directory holding the action's package, without `__pycache__`."""
    src = Path(tempfile.mkdtemp(dir=parent)) / "src"
    package = src / "jobtoken"
    shutil.copytree(
        ROOT / "src" / "jobtoken" / "action",
        package / "action",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copytree(  # the action imports the shared wire package (standard library only)
        ROOT / "src" / "jobtoken" / "wire",
        package / "wire",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy2(ROOT / "src" / "jobtoken" / "__init__.py", package / "__init__.py")
    return src


def timed(argv: list[str], env: dict[str, str], output: Path) -> float:
    output.write_text("")
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - start
    wrote = argv[-1] == "pass" or "token<<" in output.read_text()
    if result.returncode != 0 or not wrote:
        raise SystemExit(f"benchmark run failed: {argv[:2]} exited {result.returncode}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--python", default="python3")
    parser.add_argument("--node", default="node")
    args = smoke_args(parser, runs=1)
    python = real_python(args.python)
    node = shutil.which(args.node)
    if node is None:
        raise SystemExit("node is not installed: install Node.js 18+ to compare")

    with FakeOidcIssuer() as issuer, FakeBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "output"
        script = Path(tmp) / "exchange.js"
        script.write_text(NODE_SCRIPT)
        urllib_script = Path(tmp) / "exchange_urllib.py"
        urllib_script.write_text(URLLIB_SCRIPT)
        env = {
            "PATH": os.environ.get("PATH", ""),
            **issuer.runner_env(),
            "GITHUB_OUTPUT": str(output),
            "INPUT_BROKER_URL": broker.url,
            "INPUT_CONNECTOR": "hubspot",
            "INPUT_SCOPES": "crm.read",
            "INPUT_SUMMARY": "false",
        }
        copies = Path(tmp) / "cold"
        copies.mkdir()

        def action(src: Path) -> list[str]:
            return [python, "-I", "-S", "-c", BOOTSTRAP, str(src), "exchange"]

        commands: dict[str, Callable[[], list[str]]] = {
            "action": lambda: action(ROOT / "src"),
            "cold": lambda: action(fresh_action_copy(copies)),
            "node": lambda: [node, str(script)],
            "urllib": lambda: [python, "-S", "-I", str(urllib_script)],
            "bare": lambda: [python, "-S", "-I", "-c", "pass"],
        }
        for make_argv in commands.values():  # warm-up: page cache, .pyc files
            timed(make_argv(), env, output)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, make_argv in commands.items():
                samples[name].append(timed(make_argv(), env, output))

    median = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    print(f"python: {python} ({sys.version.split()[0]} here), node: {node}, runs: {args.runs}")
    for name, label in [
        ("action", "action exchange (start -> outputs written)"),
        ("cold", "action exchange, cold (no __pycache__)"),
        ("node", "node fetch, same exchange"),
        ("urllib", "throwaway urllib client, same exchange"),
        ("bare", "bare interpreter (python3 -S -I -c pass)"),
    ]:
        print(f"  {label:<44} median {median[name]:7.1f} ms")
    node_ratio = median["action"] / median["node"]
    bare_ratio = median["action"] / median["bare"]
    print(f"  action / node: {node_ratio:.2f}x (target <= 0.75x)")
    print(f"  action / bare: {bare_ratio:.2f}x (target <= 3x)")
    print(f"  cold / bare: {median['cold'] / median['bare']:.2f}x")
    print(f"  throwaway urllib / bare: {median['urllib'] / median['bare']:.2f}x")
    print("  install time: 0 s (the action runs from its checkout with the runner's python3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
