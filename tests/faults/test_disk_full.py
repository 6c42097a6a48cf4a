"""SQLite's disk fills up, or turns read-only, under a real broker: /token answers 503
``temporarily_unavailable`` with ``Retry-After``, nothing is issued, the log has one
line for the outage and no traceback; when space returns the next request succeeds,
and every token issued has its audit record in an intact chain.

The full disk is a small tmpfs mounted for the test, the read-only store files made
immutable with ``chattr +i`` (both root only: CI runs as root).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.broker_process import BrokerProcess, serving_broker

TMPFS_BYTES = 4 * 1024 * 1024


@pytest.fixture
def small_disk() -> Iterator[Path]:
    mount_point = Path(tempfile.mkdtemp(prefix="jobtoken-full-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)
        mount_point.rmdir()


@pytest.fixture
def broker(tmp_path: Path, small_disk: Path) -> Iterator[BrokerProcess]:
    with serving_broker(tmp_path, sqlite_path=str(small_disk / "broker.db")) as process:
        yield process


def _fill(disk: Path) -> Path:
    """Take every free byte of the disk; the file to delete to give them back."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_is_answered_503_and_space_returning_ends_it(
    broker: BrokerProcess, small_disk: Path
) -> None:
    assert broker.exchange().status_code == 200
    filler = _fill(small_disk)
    during = [broker.exchange() for _ in range(30)]  # the WAL needs new pages soon
    refused = [r for r in during if r.status_code != 200]
    assert refused, "the full disk refused nothing"
    for response in refused:
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "temporarily_unavailable"
        assert response.headers["Retry-After"] == "2"
    issued_during = sum(r.status_code == 200 for r in during)

    filler.unlink()
    after = broker.exchange()
    assert after.status_code == 200, after.text

    log = broker.log_path.read_text()
    assert "Traceback" not in log
    messages = [json.loads(line)["message"] for line in log.splitlines() if line.startswith("{")]
    assert messages.count("store unavailable: answering 503 until it recovers") == 1
    assert "store available again" in messages
    verified = broker.cli("audit", "verify", "--config", str(broker.config_path))
    assert verified.returncode == 0, verified.stderr
    # the first token, those the full disk still let through (pages free in the WAL),
    # and the one after: each has its record
    assert f"intact: {2 + issued_during} record(s)".encode() in verified.stdout


def _immutable(files: list[Path], on: bool) -> None:
    """``chattr +i``: not even root may write to the files (their open descriptors
    included), as with a store whose disk turned read-only under the broker."""
    done = subprocess.run(
        ["chattr", "+i" if on else "-i", *map(str, files)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot make files immutable here (needs root on ext4): {done.stderr}")


def test_a_read_only_store_is_answered_503_and_writable_again_ends_it(tmp_path: Path) -> None:
    with serving_broker(tmp_path) as broker:
        assert broker.exchange().status_code == 200
        files = [broker.db_path, Path(f"{broker.db_path}-wal")]
        _immutable(files, True)
        try:
            during = [broker.exchange() for _ in range(5)]
        finally:
            _immutable(files, False)
        for response in during:
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "temporarily_unavailable"
            assert response.headers["Retry-After"] == "2"
        after = broker.exchange()
        assert after.status_code == 200, after.text
        assert "Traceback" not in broker.log_path.read_text()
        verified = broker.cli("audit", "verify", "--config", str(broker.config_path))
        assert verified.returncode == 0, verified.stderr
        assert b"intact: 2 record(s)" in verified.stdout  # before and after; none during
