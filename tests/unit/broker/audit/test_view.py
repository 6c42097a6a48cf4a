"""Reading the audit trail for people: paged reads, filters, times, safe lines, follow."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from jobtoken.broker.audit.chain import AuditEntry, AuditLog
from jobtoken.broker.audit.view import (
    PAGE,
    AuditFilter,
    Record,
    audit_line,
    follow,
    json_line,
    parse_time,
    read_records,
    tail_start,
)
from jobtoken.broker.store import AuditRow, SqlStore, StoreError, open_store

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return open_store("sqlite", path=tmp_path / "a.db")


def _record(store: SqlStore, when: float, **fields: object) -> None:
    entry = AuditEntry(**{"decision": "issued", **fields})  # type: ignore[arg-type]
    AuditLog(store, clock=lambda: when).record(entry)


class _CountingStore:
    """The store, with the size of every page read asked of it."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.limits: list[int] = []

    def audit_page(self, after: int, limit: int, *, up_to: int | None = None) -> list[AuditRow]:
        self.limits.append(limit)
        return self.store.audit_page(after, limit, up_to=up_to)


def test_records_are_read_in_pages_never_the_whole_table(store: SqlStore) -> None:
    for _ in range(PAGE * 2 + 5):
        store.append_audit(lambda seq, prev: (json.dumps({"seq": seq}), f"{seq:064x}"))
    counting = _CountingStore(store)
    seqs = [row.seq for row, _ in read_records(counting, 0)]  # type: ignore[arg-type]
    assert seqs == list(range(1, PAGE * 2 + 6))
    assert counting.limits == [PAGE, PAGE, PAGE]
    assert [row.seq for row, _ in read_records(store, 3, up_to=6)] == [4, 5, 6]


def test_tail_starts_count_records_before_the_head(store: SqlStore) -> None:
    assert tail_start(store, 10) == (0, 0)
    for n in range(5):
        _record(store, T0 + n)
    assert tail_start(store, 2) == (3, 5)
    assert tail_start(store, 50) == (0, 5)


def test_filters_select_by_time_range_decision_and_connector(store: SqlStore) -> None:
    _record(store, T0, connector="contacts")
    _record(store, T0 + 60, decision="denied", reason="scope_not_allowed", connector="contacts")
    _record(store, T0 + 120, decision="denied", reason="unknown_connector", connector="hubspot")
    _record(store, T0 + 180, connector="hubspot")
    since = datetime.fromtimestamp(T0 + 60, timezone.utc)
    until = datetime.fromtimestamp(T0 + 180, timezone.utc)

    def seqs(wanted: AuditFilter) -> list[int]:
        return [row.seq for row, body in read_records(store, 0) if wanted.matches(body)]

    assert seqs(AuditFilter(since=since)) == [2, 3, 4]
    assert seqs(AuditFilter(since=since, until=until)) == [2, 3]  # until is exclusive
    assert seqs(AuditFilter(decision="denied")) == [2, 3]
    assert seqs(AuditFilter(decision="denied", connector="hubspot")) == [3]
    assert not AuditFilter(decision="issued").matches(None)  # unreadable: no field to match
    assert AuditFilter().matches(None)


def test_times_are_ages_dates_or_rfc3339() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
    assert parse_time("15m", now) == now - timedelta(minutes=15)
    assert parse_time("2h", now) == now - timedelta(hours=2)
    assert parse_time("7d", now) == now - timedelta(days=7)
    assert parse_time("2026-11-01") == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert parse_time("2026-11-01T10:00:00Z") == datetime(2026, 11, 1, 10, tzinfo=timezone.utc)
    assert parse_time("2026-11-01T10:00:00+02:00").utcoffset() == timedelta(hours=2)
    for bad in ("yesterday", "15 m", "1w", "", "\uff11\uff15m", "\u00b2d", "+5m"):
        with pytest.raises(ValueError, match="is not an age"):
            parse_time(bad)


def test_an_age_is_at_most_100_years() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
    assert parse_time("1234567s", now) == now - timedelta(seconds=1234567)
    assert parse_time("36600d", now) == now - timedelta(days=36600)
    for far in ("36601d", "999999d", "1" * 5000 + "s"):  # 999999d was an OverflowError
        with pytest.raises(ValueError, match="an age of more than 100 years"):
            parse_time(far, now)


def test_a_line_names_the_decision_and_never_a_token_hash(store: SqlStore) -> None:
    _record(
        store,
        T0,
        reason="policy_allowed",
        claims={"repository": "octo-org/octo-repo", "repository_id": "1"},
        connector="contacts",
        requested_scopes=("contacts.read", "contacts.write"),
        granted_scopes=("contacts.read",),
        token_sha256="ab" * 32,
        token_id="tid-1",
        request_id="0123456789abcdef",
    )
    _record(store, T0 + 1, decision="revoked", claims={"repository_id": "1"}, token_id="tid-1")
    issued, revoked = (audit_line(r) for r in read_records(store, 0))
    assert issued == (
        "2027-01-15T08:00:00.000Z      1 issued            policy_allowed connector=contacts "
        "repository=octo-org/octo-repo scopes=contacts.read request_id=0123456789abcdef "
        "token_id=tid-1"
    )
    assert "ab" * 32 not in issued
    assert "repository=id:1 scopes=- request_id=- token_id=tid-1" in revoked


def test_values_from_requests_cannot_forge_a_field_or_a_terminal_escape(store: SqlStore) -> None:
    _record(store, T0, decision="denied", connector="x repository=victim/repo\x1b[2J\n#2 issued")
    line = audit_line(next(read_records(store, 0)))
    assert "\x1b" not in line
    assert "\n" not in line
    assert ' connector="x repository=victim/repo\\u001b[2J\\n#2 issued" ' in line
    assert line.count("repository=") == 2  # the quoted one, and the record's own


def test_an_unreadable_record_is_shown_as_such() -> None:
    row = AuditRow(7, "{not json", "0" * 64, "1" * 64)
    assert audit_line((row, None)) == "record 7: unreadable (run `jobtoken broker audit verify`)"
    assert json.loads(json_line((row, None))) == {"seq": 7, "unreadable": True, "hash": "1" * 64}


def test_a_json_line_is_the_export_format(store: SqlStore) -> None:
    _record(store, T0, connector="contacts")
    record = next(read_records(store, 0))
    body = json.loads(json_line(record))
    assert (body["seq"], body["connector"], body["hash"]) == (1, "contacts", record[0].hash)


class _Stop(Exception):
    pass


def test_follow_prints_new_records_and_rides_out_a_store_outage(store: SqlStore) -> None:
    _record(store, T0)
    seen: list[int] = []
    warnings: list[str] = []
    real_page = store.audit_page
    polls = iter(["append", "fail", "fail", "append", "stop"])

    def flaky_page(after: int, limit: int, *, up_to: int | None = None) -> list[AuditRow]:
        if state[0] == "fail":
            raise StoreError("database is locked")
        return real_page(after, limit, up_to=up_to)

    state = ["ok"]

    def sleep(_: float) -> None:
        state[0] = next(polls)
        if state[0] == "append":
            _record(store, T0 + len(seen) + 1)
        if state[0] == "stop":
            raise _Stop

    def emit(record: Record) -> None:
        seen.append(record[0].seq)

    store.audit_page = flaky_page  # type: ignore[method-assign]
    with pytest.raises(_Stop):
        follow(store, 1, emit, warn=warnings.append, sleep=sleep)
    assert seen == [2, 3]
    assert warnings == [
        "the store does not answer (database is locked); retrying",
        "the store answers again",
    ]
