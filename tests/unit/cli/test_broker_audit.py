"""``jobtoken broker audit …`` (tail, list, verify, archive) over a real SQLite store,
run in this process (``support.in_process``); ``tail --follow``, ended by SIGINT, as a
real process."""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobtoken.broker.audit.chain import AuditEntry, AuditLog
from jobtoken.broker.store import open_store
from support.in_process import run_cli

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
SHA = "5e" * 32


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobtoken.cli", "broker", *args]


def _run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return run_cli(["broker", *args])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    path = tmp_path / "broker.toml"
    path.write_text(
        '[keys]\nmaster_key_file = "master.key"\n[store]\npath = "b.db"\n'
        '[connectors.contacts]\nbase_url = "https://api.example.com"\n'
    )
    return path


def _append(config: Path, *entries: tuple[float, AuditEntry]) -> None:
    store = open_store("sqlite", path=config.parent / "b.db")
    try:
        for when, entry in entries:
            AuditLog(store, clock=lambda when=when: when).record(entry)
    finally:
        store.close()


def _issued(request_id: str, connector: str = "contacts") -> AuditEntry:
    return AuditEntry(
        "issued",
        "policy_allowed",
        claims={"repository": "octo-org/octo-repo"},
        connector=connector,
        granted_scopes=("contacts.read",),
        token_sha256=SHA,
        token_id=f"tid-{request_id}",
        request_id=request_id,
    )


def _denied(request_id: str, connector: str = "contacts") -> AuditEntry:
    return AuditEntry(
        "denied",
        "scope_not_allowed",
        claims={"repository": "octo-org/octo-repo"},
        connector=connector,
        requested_scopes=("contacts.write",),
        request_id=request_id,
    )


@pytest.fixture
def trail(config: Path) -> Path:
    """Five records, a minute apart from T0: issued, denied, issued (hubspot), denied
    (hubspot), issued."""
    _append(
        config,
        (T0, _issued("r1")),
        (T0 + 60, _denied("r2")),
        (T0 + 120, _issued("r3", "hubspot")),
        (T0 + 180, _denied("r4", "hubspot")),
        (T0 + 240, _issued("r5")),
    )
    return config


def _request_ids(out: bytes) -> list[str]:
    return [
        part.removeprefix("request_id=")
        for line in out.decode().splitlines()
        for part in line.split()
        if part.startswith("request_id=")
    ]


def test_tail_prints_the_last_records_oldest_first(trail: Path) -> None:
    done = _run("audit", "tail", "--config", str(trail), "-n", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[1] == (
        "2027-01-15T08:04:00.000Z      5 issued            policy_allowed connector=contacts "
        "repository=octo-org/octo-repo scopes=contacts.read request_id=r5 token_id=tid-r5"
    )
    assert _request_ids(done.stdout) == ["r4", "r5"]
    assert SHA.encode() not in done.stdout
    assert _request_ids(_run("audit", "tail", "--config", str(trail)).stdout) == [
        "r1", "r2", "r3", "r4", "r5",
    ]  # fmt: skip
    assert _run("audit", "tail", "--config", str(trail), "-n", "0").stdout == b""


def test_list_selects_by_time_decision_and_connector(trail: Path) -> None:
    def listed(*options: str) -> list[str]:
        done = _run("audit", "list", "--config", str(trail), *options)
        assert done.returncode == 0, done.stderr
        return _request_ids(done.stdout)

    assert listed("--since", "2027-01-15T08:01:00Z") == ["r2", "r3", "r4", "r5"]
    assert listed("--since", "2027-01-15T08:01:00Z", "--until", "2027-01-15T08:03:00Z") == [
        "r2", "r3",
    ]  # fmt: skip
    assert listed("--since", "2027-01-15", "--decision", "denied") == ["r2", "r4"]
    assert listed("--since", "2027-01-15", "--connector", "hubspot") == ["r3", "r4"]
    assert listed("--since", "2027-01-16") == []
    summary = _run("audit", "list", "--config", str(trail), "--since", "2027-01-15",
                   "--decision", "denied").stderr  # fmt: skip
    assert summary == b"2 of 5 record(s) match, up to record 5\n"


def test_list_json_prints_the_export_format(trail: Path) -> None:
    done = _run("audit", "list", "--config", str(trail), "--since", "2027-01-15", "--json",
                "--decision", "issued")  # fmt: skip
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [r["request_id"] for r in records] == ["r1", "r3", "r5"]
    assert all(len(r["hash"]) == 64 for r in records)


def test_list_reads_more_records_than_one_page(config: Path) -> None:
    _append(config, *[(T0 + n, _denied(f"p{n}")) for n in range(1203)])
    done = _run("audit", "list", "--config", str(config), "--since", "2027-01-15")
    assert done.returncode == 0, done.stderr
    ids = _request_ids(done.stdout)
    assert ids == [f"p{n}" for n in range(1203)]


def test_times_and_ranges_are_checked(trail: Path) -> None:
    bad = _run("audit", "list", "--config", str(trail), "--since", "last tuesday")
    assert bad.returncode == 2
    assert b"is not an age (15m, 2h, 7d), a date (2026-11-01) or an RFC 3339 time" in bad.stderr
    backwards = _run("audit", "list", "--config", str(trail), "--since", "2027-01-15T09:00:00Z",
                     "--until", "2027-01-15T08:00:00Z")  # fmt: skip
    assert backwards.returncode == 1
    assert b"--until must be later than --since" in backwards.stderr
    assert _run("audit", "tail", "--config", str(trail), "-n", "-1").returncode == 2
    decision = _run("audit", "list", "--config", str(trail), "--since", "1h", "--decision", "x")
    assert decision.returncode == 2


@pytest.mark.parametrize("age", ["999999d", "1" * 5000 + "s"])
def test_an_age_before_year_one_is_a_usage_error_not_a_traceback(trail: Path, age: str) -> None:
    done = _run("audit", "list", "--config", str(trail), "--since", age)
    assert done.returncode == 2
    assert b"is an age of more than 100 years" in done.stderr
    assert b"Traceback" not in done.stderr


def test_tail_follow_prints_new_records_until_interrupted(trail: Path) -> None:
    process = subprocess.Popen(
        _command("audit", "tail", "--config", str(trail), "-n", "1", "--follow"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        assert b"request_id=r5" in _read_line(process.stdout)
        _append(trail, (T0 + 300, _denied("r6")), (T0 + 301, _issued("r7")))
        assert b"request_id=r6" in _read_line(process.stdout)
        assert b"request_id=r7" in _read_line(process.stdout)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    assert process.stderr.read() == b""


def _read_line(stream: object, timeout: float = 15.0) -> bytes:
    """One line of the child's output, or a failure after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()  # type: ignore[attr-defined]
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            raise AssertionError(f"no line within {timeout} s (got {line!r})")
        byte = os.read(fd, 1)
        if not byte:
            raise AssertionError(f"the command ended (got {line!r})")
        line += byte
    return line


def test_an_unreadable_config_is_reported(tmp_path: Path) -> None:
    done = _run("audit", "tail", "--config", str(tmp_path / "missing.toml"))
    assert done.returncode == 1
    assert b"cannot read the config file" in done.stderr


def test_audit_verify_of_a_new_store_is_intact(config: Path) -> None:
    done = _run("audit", "verify", "--config", str(config))
    assert done.returncode == 0
    assert b"audit chain intact: 0 record(s)" in done.stdout


def test_audit_archive_moves_old_records_and_verify_starts_at_the_checkpoint(
    config: Path,
) -> None:
    from jobtoken.broker.audit.chain import AuditEntry, AuditLog
    from jobtoken.broker.store import open_store

    store = open_store("sqlite", path=config.parent / "b.db")
    for when in (1_700_000_000.0, 1_700_000_001.0, 1_900_000_000.0):  # 2023, 2023, 2030
        AuditLog(store, clock=lambda when=when: when).record(AuditEntry(decision="denied"))
    store.close()
    archive = config.parent / "audit-2023.jsonl"
    done = _run("audit", "archive", "--config", str(config), "--before", "2024-01-01",
                "--output", str(archive))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"archived 2 record(s), up to record 2, to " in done.stdout
    assert len(archive.read_text().splitlines()) == 2
    verified = _run("audit", "verify", "--config", str(config))
    assert verified.returncode == 0, verified.stderr
    assert b"intact: 1 record(s) after the archive checkpoint at record 2" in verified.stdout
    again = _run("audit", "archive", "--config", str(config), "--before", "2024-01-01",
                 "--output", str(archive))  # fmt: skip
    assert b"nothing archived" in again.stdout
    bad = _run("audit", "archive", "--config", str(config), "--before", "last tuesday",
               "--output", str(archive))  # fmt: skip
    assert bad.returncode == 2
    assert b"is not a date" in bad.stderr
