from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from jobtoken.broker.audit.chain import AuditEntry, AuditLog, check_chain, export_jsonl
from jobtoken.broker.store import SqlStore, open_store


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return open_store("sqlite", path=tmp_path / "audit.db")


def _fill(store: SqlStore, count: int = 4) -> None:
    log = AuditLog(store, clock=lambda: 1_700_000_000.0)
    for i in range(count):
        log.record(
            AuditEntry(
                decision="issued" if i % 2 == 0 else "denied",
                reason="policy_allowed" if i % 2 == 0 else "scope_not_allowed",
                claims={"repository_id": "1", "run_id": str(i), "unlisted_claim": "dropped"},
                connector="contacts",
                requested_scopes=("contacts.read",),
                token_sha256="ab" * 32,
                client_address="127.0.0.1",
                user_agent="test",
            )
        )


def _db(store: SqlStore, tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "audit.db", isolation_level=None)


def test_an_untouched_chain_verifies(store: SqlStore) -> None:
    _fill(store)
    assert check_chain(store.audit_rows(), store.audit_head()) == []


def test_an_empty_chain_verifies(store: SqlStore) -> None:
    assert check_chain(store.audit_rows(), store.audit_head()) == []


def test_an_altered_record_is_detected(store: SqlStore, tmp_path: Path) -> None:
    _fill(store)
    _db(store, tmp_path).execute(
        "UPDATE audit SET record = replace(record, 'denied', 'issued') WHERE seq = 2"
    )
    assert "record 2: content altered (hash mismatch)" in check_chain(
        store.audit_rows(), store.audit_head()
    )


def test_an_altered_record_with_a_recomputed_hash_breaks_the_next_link(
    store: SqlStore, tmp_path: Path
) -> None:
    from jobtoken.broker.audit.chain import chain_hash

    _fill(store)
    db = _db(store, tmp_path)
    record, prev = db.execute("SELECT record, prev_hash FROM audit WHERE seq = 2").fetchone()
    forged = record.replace("denied", "issued")
    db.execute(
        "UPDATE audit SET record = ?, hash = ? WHERE seq = 2", (forged, chain_hash(prev, forged))
    )
    assert "record 3: does not link to the record before it" in check_chain(
        store.audit_rows(), store.audit_head()
    )


def test_a_removed_record_is_detected(store: SqlStore, tmp_path: Path) -> None:
    _fill(store)
    _db(store, tmp_path).execute("DELETE FROM audit WHERE seq = 2")
    problems = check_chain(store.audit_rows(), store.audit_head())
    assert any("expected record 2" in p for p in problems)


def test_removing_the_last_record_is_detected_by_the_head(store: SqlStore, tmp_path: Path) -> None:
    _fill(store)
    _db(store, tmp_path).execute("DELETE FROM audit WHERE seq = 4")
    problems = check_chain(store.audit_rows(), store.audit_head())
    assert any("records removed at the end" in p for p in problems)


def test_reordered_records_are_detected(store: SqlStore, tmp_path: Path) -> None:
    _fill(store)
    db = _db(store, tmp_path)
    db.execute("UPDATE audit SET seq = -2 WHERE seq = 2")
    db.execute("UPDATE audit SET seq = 2 WHERE seq = 3")
    db.execute("UPDATE audit SET seq = 3 WHERE seq = -2")
    problems = check_chain(store.audit_rows(), store.audit_head())
    assert "record 2: does not link to the record before it" in problems
    assert "record 2: its content names another position" in problems


def test_records_keep_only_the_listed_claims_and_bound_fields(store: SqlStore) -> None:
    AuditLog(store).record(
        AuditEntry(
            decision="denied", claims={"sub": "s", "secret_claim": "x"}, user_agent="u" * 9999
        )
    )
    record = json.loads(next(iter(store.audit_rows())).record)
    assert record["claims"] == {"sub": "s"}
    assert len(record["user_agent"]) <= 513
    assert record["time"].endswith("Z")


def test_an_unknown_decision_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown audit decision"):
        AuditEntry(decision="maybe")


def test_export_writes_each_record_with_its_hash(store: SqlStore) -> None:
    _fill(store, 3)
    out = io.StringIO()
    assert export_jsonl(store.audit_rows(), out) == 3
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    assert lines[1]["prev_hash"] == lines[0]["hash"]
    assert lines[0]["decision"] == "issued"
    assert lines[1]["reason"] == "scope_not_allowed"
