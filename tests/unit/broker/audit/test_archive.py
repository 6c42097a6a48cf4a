"""``audit archive``: an old prefix of the chain moves to a file, its head stays as a
checkpoint, and the chain is verifiable on both sides of it; nothing is archived
from a broken chain or over an existing file."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from jobtoken.broker.audit.archive import ArchiveError, archive_before
from jobtoken.broker.audit.chain import AuditEntry, AuditLog, check_chain
from jobtoken.broker.store import GENESIS_HASH, AuditRow, SqlStore

DAY1 = datetime(2026, 11, 1, 12, tzinfo=timezone.utc).timestamp()
DAY2 = datetime(2026, 11, 2, 12, tzinfo=timezone.utc).timestamp()
MIDNIGHT = datetime(2026, 11, 2, tzinfo=timezone.utc)


def _records(store: SqlStore, when: float, count: int) -> None:
    log = AuditLog(store, clock=lambda: when)
    for i in range(count):
        log.record(AuditEntry(decision="denied", reason=f"r{i}"))


def _intact(store: SqlStore) -> list[str]:
    head = store.audit_head()
    return check_chain(store.audit_rows(), head, store.audit_checkpoint())


def test_an_archive_moves_the_old_prefix_and_both_sides_verify(
    store: SqlStore, tmp_path: Path
) -> None:
    _records(store, DAY1, 10)
    _records(store, DAY2, 5)
    checkpoint = archive_before(store, MIDNIGHT, tmp_path / "a1.jsonl")
    assert checkpoint is not None
    assert (checkpoint.seq, checkpoint.records) == (10, 10)
    assert [r.seq for r in store.audit_rows()] == [11, 12, 13, 14, 15]
    assert store.audit_checkpoint() == (10, checkpoint.hash)
    assert _intact(store) == []

    lines = [json.loads(line) for line in (tmp_path / "a1.jsonl").read_text().splitlines()]
    prev = GENESIS_HASH
    for line in lines:  # the file is the chain before the checkpoint, checkable alone
        assert line["prev_hash"] == prev
        prev = line["hash"]
    assert [line["seq"] for line in lines] == list(range(1, 11))
    assert prev == checkpoint.hash

    assert archive_before(store, MIDNIGHT, tmp_path / "a2.jsonl") is None  # nothing older
    day3 = datetime(2026, 11, 3, tzinfo=timezone.utc)
    later = archive_before(store, day3, tmp_path / "a3.jsonl")
    assert later is not None
    assert (later.seq, later.records) == (15, 5)
    assert list(store.audit_rows()) == []
    assert _intact(store) == []
    _records(store, DAY2, 1)
    assert [r.seq for r in store.audit_rows()] == [16]
    assert _intact(store) == []


def test_tampering_after_an_archive_is_still_found(store: SqlStore, tmp_path: Path) -> None:
    _records(store, DAY1, 4)
    _records(store, DAY2, 3)
    assert archive_before(store, MIDNIGHT, tmp_path / "a.jsonl") is not None
    rows = list(store.audit_rows())
    forged = [AuditRow(rows[0].seq, rows[0].record, "f" * 64, rows[0].hash), *rows[1:]]
    checkpoint = store.audit_checkpoint()
    assert any("does not link" in p for p in check_chain(forged, store.audit_head(), checkpoint))
    assert any(
        "expected record 5" in p
        for p in check_chain(rows[1:], store.audit_head(), store.audit_checkpoint())
    )


def test_nothing_is_archived_from_a_broken_chain_or_over_a_file(
    store: SqlStore, tmp_path: Path
) -> None:
    _records(store, DAY1, 3)
    _records(store, DAY2, 1)
    existing = tmp_path / "exists.jsonl"
    existing.write_text("an earlier archive\n")
    with pytest.raises(ArchiveError, match="exists"):
        archive_before(store, MIDNIGHT, existing)
    assert existing.read_text() == "an earlier archive\n"
    assert [r.seq for r in store.audit_rows()] == [1, 2, 3, 4]

    second = json.loads(list(store.audit_rows())[1].record)
    for forged_record in (json.dumps({**second, "reason": "forged"}), '{"forged":true}'):
        _alter_second_record(store, forged_record)  # content altered; then no time at all
        with pytest.raises(ArchiveError, match="the chain is broken"):
            archive_before(store, MIDNIGHT, tmp_path / "new.jsonl")
        assert not (tmp_path / "new.jsonl").exists()
        assert [r.seq for r in store.audit_rows()] == [1, 2, 3, 4]


def _alter_second_record(store: SqlStore, record: str) -> None:
    """As an attacker with write access to the database would."""
    store._write(
        lambda cur: cur.execute(store._sql("UPDATE audit SET record = ? WHERE seq = 2"), (record,)),
    )
