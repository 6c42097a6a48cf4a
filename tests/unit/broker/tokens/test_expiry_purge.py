"""The expiry purge against both backends: SQLite and a real PostgreSQL 15."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from jobtoken.broker.assembly import Broker
from jobtoken.broker.config import load_config
from jobtoken.broker.http import app as app_module
from jobtoken.broker.http.app import create_app
from jobtoken.broker.store import SqlStore, StoreError, TokenRecord
from jobtoken.broker.tokens import expiry_purge
from jobtoken.broker.tokens.expiry_purge import ExpiryPurge

NOW = int(time.time())
_TOKEN = TokenRecord(
    token_id="t0",
    token_sha256="a" * 64,
    kind="minted",
    connector="contacts",
    scopes="contacts.read",
    subject="repo:o/r:ref:refs/heads/main",
    repository_id="1",
    run_id="2",
    run_attempt="1",
    check_run_id="7",
    issued_at=NOW,
    expires_at=NOW + 600,
)


def _build(seq: int, prev: str) -> tuple[str, str]:
    return f'{{"seq":{seq}}}', f"{seq:064x}"


def _add_token(store: SqlStore, token_id: str, expires_at: int) -> None:
    store.issue_token(_build, replace(_TOKEN, token_id=token_id, expires_at=expires_at))


def test_a_round_deletes_expired_jti_rows_and_tokens_past_retention(store: SqlStore) -> None:
    now = int(time.time())  # the purge's clock runs 2000 s ahead of it
    for jti in ("j1", "j2", "j3"):
        assert store.claim_jti("i", jti, now + 100)
    assert store.claim_jti("i", "live", now + 10_000)
    _add_token(store, "old", now + 100)  # expired 1900 s before the round: past retention
    _add_token(store, "recent", now + 1950)  # expired 50 s before: kept for retention

    purge = ExpiryPurge(store, retention=100, clock=lambda: now + 2000)

    assert purge.run_round() == (3, 1)
    assert store.find_token("old") is None
    assert store.find_token("recent") is not None
    assert store.claim_jti("i", "live", now + 10_000) is False  # a live jti still refuses
    assert store.claim_jti("i", "j1", now + 10_000) is True  # its row is gone
    assert purge.run_round() == (0, 0)


def test_a_round_is_bounded_and_the_next_one_goes_on(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(expiry_purge, "BATCH", 2)
    monkeypatch.setattr(expiry_purge, "MAX_BATCHES", 2)
    now = int(time.time())
    for n in range(5):
        assert store.claim_jti("i", f"j{n}", now + 100)
    purge = ExpiryPurge(store, retention=0, clock=lambda: now + 2000)

    assert purge.run_round() == (4, 0)  # two batches of two, then the round stops
    assert purge.run_round() == (1, 0)


class _DownStore:
    def purge_expired_jti(self, before: int, limit: int) -> int:
        raise StoreError("PostgreSQL store unavailable: connection refused")


def test_a_store_error_ends_the_round_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    purge = ExpiryPurge(_DownStore(), retention=0)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="jobtoken.broker"):
        assert purge.run_round() == (0, 0)
    assert [r.getMessage() for r in caplog.records] == [
        "expiry purge skipped this round: PostgreSQL store unavailable: connection refused"
    ]
    assert all(r.exc_info is None for r in caplog.records)


def test_the_task_keeps_running_after_a_failed_round(caplog: pytest.LogCaptureFixture) -> None:
    rounds: list[int] = []

    class _Breaks(ExpiryPurge):
        def run_round(self) -> tuple[int, int]:
            rounds.append(1)
            raise RuntimeError("boom")

    async def run() -> None:
        purge = _Breaks(_DownStore(), retention=0, interval=0.01)  # type: ignore[arg-type]
        task = asyncio.create_task(purge.run_forever())
        deadline = time.monotonic() + 5
        while len(rounds) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        task.cancel()

    with caplog.at_level(logging.WARNING, logger="jobtoken.broker"):
        asyncio.run(run())
    assert len(rounds) >= 3
    assert "expiry purge failed this round: RuntimeError" in caplog.text


def test_the_app_runs_the_purge_with_the_configured_retention_while_it_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    (tmp_path / "policies").mkdir()
    config = tmp_path / "broker.toml"
    config.write_text(
        '[keys]\nmaster_key_file = "master.key"\n[store]\npath = "b.db"\n'
        "[tokens]\nretention_seconds = 0\n"
    )
    started: list[ExpiryPurge] = []

    class _Fast(ExpiryPurge):
        def __init__(
            self, store: SqlStore, *, retention: int, after_round: Callable[[], object]
        ) -> None:
            assert retention == 0
            assert after_round == broker.app_tokens.sweep  # GitHub App revocations retried
            super().__init__(store, retention=retention, interval=0.01, after_round=after_round)
            started.append(self)

    monkeypatch.setattr(app_module, "ExpiryPurge", _Fast)
    broker = Broker.from_config(load_config(config))
    try:
        _add_token(broker.store, "expired", int(time.time()) - 10)
        with TestClient(create_app(broker)):
            deadline = time.monotonic() + 5
            while broker.store.find_token("expired") and time.monotonic() < deadline:
                time.sleep(0.01)
            assert broker.store.find_token("expired") is None
        assert len(started) == 1
    finally:
        broker.close()
