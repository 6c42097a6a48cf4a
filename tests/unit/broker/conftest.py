"""Broker test fixtures: a throwaway PostgreSQL 15 cluster, and a real broker process
(``jobtoken broker serve``) on a free loopback port with a fake OIDC issuer, a contacts
API as its upstream connector, and every secret in files of a temp dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobtoken.testing.broker_process import (
    BrokerProcess,
    free_port,
    running_broker,
)
from jobtoken.testing.contacts_api import ContactsApi
from jobtoken.testing.oidc_issuer import FakeOidcIssuer

#: Debian/Ubuntu install server binaries per major version; take the newest.
PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
PG_BIN = PG_BINS[-1].parent if PG_BINS else Path("/usr/lib/postgresql/15/bin")


# -- PostgreSQL ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL cluster in a temp dir on a free loopback port, for this session."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail("install the postgresql package (apt-get install postgresql)")
    workdir = Path(tempfile.mkdtemp(prefix="jobtoken-pg-"))
    data, sockets = workdir / "data", workdir / "sock"
    data.mkdir()
    sockets.mkdir()
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(workdir, "postgres")
        shutil.chown(data, "postgres")
        shutil.chown(sockets, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*as_postgres, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "jobtoken",
         "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off"
    subprocess.run(
        [*as_postgres, str(PG_BIN / "pg_ctl"), "-w", "-D", str(data), "-o", options,
         "-l", str(workdir / "log"), "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"host=127.0.0.1 port={port} user=jobtoken dbname=postgres"
    finally:
        subprocess.run(
            [*as_postgres, str(PG_BIN / "pg_ctl"), "-w", "-D", str(data), "-m", "immediate",
             "stop"],
            check=False, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(workdir, ignore_errors=True)


# -- a real broker process -------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A running broker (module-wide), with a stored credential for both connectors."""
    with (
        FakeOidcIssuer() as issuer,
        ContactsApi() as contacts,
        running_broker(tmp_path_factory.mktemp("broker"), issuer, contacts) as process,
    ):
        yield process
