"""wrk as the load generator: one pre-generated request body per request, from a file.

The Lua script (written to a temp dir at run time) reads the body file in ``init``,
one body per line; with several wrk threads each takes every n-th line, so no body is
ever sent twice. When a thread has sent all of its bodies it does not wrap around: it
sends ``GET <spare path>`` instead, which the server answers 404, so running out shows
as errors and as ``exhausted`` in the result (size the pool with ``--tokens``).
``done()`` prints one parseable line with the counts and latency percentiles.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MARK = "JOBTOKEN-BENCH"

LUA = """\
-- written by bench/wrk.py: one body per request, never reused
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(args[2])
  bodies, count, sent, exhausted = {}, 0, 0, 0
  local line_no = 0
  for line in io.lines(args[1]) do
    if line_no % nthreads == id - 1 then
      count = count + 1
      bodies[count] = line
    end
    line_no = line_no + 1
  end
  headers = {["Content-Type"] = args[3]}
  target, spare = args[4], args[5]
end

function request()
  sent = sent + 1
  if sent > count then
    exhausted = exhausted + 1
    return wrk.format("GET", spare)
  end
  local body = bodies[sent]
  bodies[sent] = nil
  return wrk.format("POST", target, headers, body)
end

function done(summary, latency, requests)
  local out = 0
  for _, t in ipairs(threads) do out = out + t:get("exhausted") end
  local e = summary.errors
  io.write(string.format(
    "%s requests=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d " ..
    "exhausted=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\\n",
    "MARK", summary.requests, summary.duration, e.status, e.connect, e.read, e.write,
    e.timeout, out, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
""".replace('"MARK"', f'"{MARK}"')


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    status_errors: int  # responses with status >= 400 (wrk's "Non-2xx or 3xx")
    socket_errors: int  # connect + read + write + timeout
    exhausted: int  # requests sent after the body file ran out (also in status_errors)
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def ok(self) -> int:
        """Responses below 400: the exchanges (logins) that succeeded."""
        return self.requests - self.status_errors

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def parse(output: str) -> WrkResult:
    """The ``done()`` line of the script's output."""
    for line in output.splitlines():
        if line.startswith(MARK + " "):
            f = {k: int(v) for k, v in (item.split("=", 1) for item in line.split()[1:])}
            return WrkResult(
                requests=f["requests"],
                duration_s=f["duration_us"] / 1e6,
                status_errors=f["status"],
                socket_errors=f["connect"] + f["read"] + f["write"] + f["timeout"],
                exhausted=f["exhausted"],
                p50_ms=f["p50_us"] / 1000,
                p90_ms=f["p90_us"] / 1000,
                p99_ms=f["p99_us"] / 1000,
                max_ms=f["max_us"] / 1000,
            )
    raise RuntimeError(f"wrk printed no {MARK} line:\n{output[-2000:]}")


def ensure_wrk(*, install: bool = True) -> str:
    """wrk's path; installs it with apt-get when missing, root and ``install``, else
    exits 2."""
    found = shutil.which("wrk")
    if found:
        return found
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        command = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(command, check=False, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
            subprocess.run(command, check=False, capture_output=True)
        found = shutil.which("wrk")
        if found:
            return found
    print(
        "wrk is not installed. Install it (Debian/Ubuntu: sudo apt-get update && "
        "sudo apt-get install -y wrk; macOS: brew install wrk) and run again.",
        file=sys.stderr,
    )
    sys.exit(2)


@dataclass(frozen=True)
class Load:
    duration_s: int
    connections: int
    threads: int = 1
    timeout_s: int = 5


def run_wrk(
    wrk: str,
    workdir: Path,
    load: Load,
    url: str,
    bodies: Path,
    *,
    content_type: str,
    path: str,
    spare_path: str,
    cpu: int | None,
) -> WrkResult:
    """One timed run against ``url``; ``cpu`` pins wrk to that core (None: unpinned)."""
    script = workdir / "one_body_per_request.lua"
    script.write_text(LUA)
    command = [
        wrk, f"-t{load.threads}", f"-c{load.connections}", f"-d{load.duration_s}s",
        f"--timeout={load.timeout_s}s", "-s", str(script), url,
        "--", str(bodies), str(load.threads), content_type, path, spare_path,
    ]  # fmt: skip
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=load.duration_s + 120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    return parse(done.stdout)
