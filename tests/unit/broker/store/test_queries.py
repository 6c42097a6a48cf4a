"""The store's queries against both backends: SQLite and a real PostgreSQL 15."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import psycopg
import pytest

from jobtoken.broker.store import (
    AuditBuilder,
    IssueRefused,
    JobKey,
    JtiClaim,
    SealedRecord,
    SigningKeyRow,
    SqlStore,
    TokenRecord,
    open_store,
)
from jobtoken.broker.store.job_ends import PURGE_BATCH
from support.stores import open_kind as _open


def _token(
    token_id: str = "t1",  # noqa: S107
    sha: str = "a" * 64,
    check_run_id: str = "7",
    **kw: object,
) -> TokenRecord:
    now = int(time.time())
    fields: dict[str, object] = {
        "token_id": token_id,
        "token_sha256": sha,
        "kind": "minted",
        "connector": "contacts",
        "scopes": "contacts.read",
        "subject": "repo:o/r:ref:refs/heads/main",
        "repository_id": "1",
        "run_id": "2",
        "run_attempt": "1",
        "check_run_id": check_run_id,
        "issued_at": now,
        "expires_at": now + 600,
        **kw,
    }
    return TokenRecord(**fields)  # type: ignore[arg-type]


def _build(seq: int, prev: str) -> tuple[str, str]:
    return f'{{"seq":{seq}}}', f"{seq:064x}"


def test_a_jti_is_claimed_once(store: SqlStore) -> None:
    expires = int(time.time()) + 300
    assert store.claim_jti("https://issuer", "j1", expires) is True
    assert store.claim_jti("https://issuer", "j1", expires) is False
    assert store.claim_jti("https://other", "j1", expires) is True


def test_a_claimed_jti_reads_as_claimed_until_it_expires(store: SqlStore) -> None:
    now = int(time.time())
    assert store.jti_claimed("https://issuer", "j1", now) is False
    store.claim_jti("https://issuer", "j1", now + 300)
    assert store.jti_claimed("https://issuer", "j1", now) is True
    assert store.jti_claimed("https://other", "j1", now) is False
    assert store.jti_claimed("https://issuer", "j1", now + 302) is False  # expired


def test_an_expired_jti_is_forgotten(store: SqlStore) -> None:
    assert store.claim_jti("i", "old", int(time.time()) - 10) is True
    assert store.claim_jti("i", "old", int(time.time()) + 300) is True


def test_audit_and_token_are_written_together(store: SqlStore) -> None:
    token = _token()
    assert store.issue_token(_build, token) == 1
    assert store.append_audit(_build) == 2
    assert store.audit_head() == (2, f"{2:064x}")
    rows = list(store.audit_rows())
    assert [(r.seq, r.prev_hash) for r in rows] == [(1, "0" * 64), (2, f"{1:064x}")]
    assert store.find_token("t1") == token


def test_a_failed_token_insert_rolls_back_its_audit_record(store: SqlStore) -> None:
    store.issue_token(_build, _token())
    with pytest.raises(Exception):  # noqa: B017, PT011 - the backend's integrity error
        store.issue_token(_build, _token())  # same token_id
    assert store.audit_head() == (1, f"{1:064x}")
    assert len(list(store.audit_rows())) == 1


def _recorded(token: TokenRecord) -> AuditBuilder:
    return lambda seq, prev: (f'{{"seq":{seq},"revoked":"{token.token_id}"}}', f"{seq:064x}")


def test_revoke_by_hash_revokes_once_with_its_audit_record(store: SqlStore) -> None:
    store.issue_token(_build, _token())
    first = store.revoke_by_sha256("a" * 64, 100, _recorded)
    assert [r.token_id for r in first] == ["t1"]
    assert store.revoke_by_sha256("a" * 64, 101, _recorded) == []
    assert store.find_tokens("a" * 64)[0].revoked_at == 100
    assert [r.record for r in store.audit_rows()][1:] == ['{"seq":2,"revoked":"t1"}']


def test_possession_revokes_no_shared_lease_and_a_job_only_its_own(store: SqlStore) -> None:
    for token_id, job in (("lease-7", "7"), ("lease-8", "8")):
        lease = _token(token_id, check_run_id=job, kind="passthrough", shared_credential=True)
        store.issue_token(_build, lease)
    store.issue_token(_build, _token("own-7", "b" * 64, kind="passthrough"))  # job's own

    assert store.revoke_by_sha256("a" * 64, 100, _recorded) == []
    assert [r.token_id for r in store.revoke_by_sha256("b" * 64, 100, _recorded)] == ["own-7"]
    sibling = JobKey("1", "2", "1", "9")
    assert store.revoke_by_sha256("a" * 64, 101, _recorded, sibling) == []
    job_8 = JobKey("1", "2", "1", "8")
    assert [r.token_id for r in store.revoke_by_sha256("a" * 64, 102, _recorded, job_8)] == [
        "lease-8"
    ]
    left = {r.token_id: (r.revoked_at, r.shared_credential) for r in store.find_tokens("a" * 64)}
    assert left == {"lease-7": (None, True), "lease-8": (102, True)}


def test_revoke_by_id_needs_exactly_the_tokens_job(store: SqlStore) -> None:
    store.issue_token(_build, _token("t7", check_run_id="7"))
    for other in (
        JobKey("1", "2", "1", "8"),
        JobKey("1", "2", "1", ""),
        JobKey("1", "3", "1", "7"),
    ):
        assert store.revoke_by_id("t7", 100, _recorded, other) is None
    revoked = store.revoke_by_id("t7", 101, _recorded, JobKey("1", "2", "1", "7"))
    assert (revoked.token_id if revoked else None) == "t7"
    assert store.revoke_by_id("t7", 102, _recorded, JobKey("1", "2", "1", "7")) is None
    assert store.find_tokens("a" * 64)[0].revoked_at == 101


def test_a_revocation_whose_record_fails_is_not_revoked(store: SqlStore) -> None:
    store.issue_token(_build, _token())

    def failing(token: TokenRecord) -> AuditBuilder:
        def build(seq: int, prev: str) -> tuple[str, str]:
            raise RuntimeError("the record could not be built")

        return build

    with pytest.raises(RuntimeError):
        store.revoke_by_sha256("a" * 64, 100, failing)
    assert store.find_token("t1").revoked_at is None  # type: ignore[union-attr]
    assert store.audit_head() == (1, f"{1:064x}")


def test_a_large_job_is_revoked_in_bounded_transactions(store: SqlStore) -> None:
    for i in range(7):
        store.issue_token(_build, _token(f"t{i}", f"{i:064x}"))
    batches = []
    while True:
        batch = store.revoke_job("1", "2", "1", "7", 100, _recorded, limit=3)
        batches.append(len(batch))
        if len(batch) < 3:
            break
    assert batches == [3, 3, 1]
    revoked = [r.record for r in store.audit_rows() if "revoked" in r.record]
    assert len(revoked) == 7
    assert all(t.revoked_at == 100 for t in (store.find_token(f"t{i}") for i in range(7)) if t)


def test_revoke_job_matches_the_job_and_tokens_without_a_check_run(store: SqlStore) -> None:
    store.issue_token(_build, _token("same-job", "1" * 64, "7"))
    store.issue_token(_build, _token("no-check-run", "2" * 64, ""))
    store.issue_token(_build, _token("other-job", "3" * 64, "8"))
    store.issue_token(_build, _token("other-run", "4" * 64, "7", run_id="9"))
    revoked = store.revoke_job("1", "2", "1", "7", 100, _recorded)
    assert sorted(r.token_id for r in revoked) == ["no-check-run", "same-job"]
    assert store.find_token("other-job").revoked_at is None  # type: ignore[union-attr]


def test_credentials_are_replaced_only_if_unchanged(store: SqlStore) -> None:
    store.put_credential("contacts", b"v1", 1)
    store.put_credential("contacts", b"v2", 2)
    assert store.get_credential("contacts") == b"v2"
    assert store.get_credential("missing") is None
    stale = SealedRecord("connector_credentials", "contacts", b"v1")
    assert store.replace_sealed(stale, b"v3") is False
    current = SealedRecord("connector_credentials", "contacts", b"v2")
    assert store.replace_sealed(current, b"v3") is True
    assert store.get_credential("contacts") == b"v3"


def test_signing_keys_rotate_current_previous_retired(store: SqlStore) -> None:
    for kid in ("k1", "k2", "k3"):
        store.add_signing_key(SigningKeyRow(kid, "ES256", "current", 1, kid.encode()))
    assert [(k.kid, k.state) for k in store.signing_keys()] == [
        ("k3", "current"),
        ("k2", "previous"),
    ]
    assert {r.key for r in store.sealed_records()} == {"k1", "k2", "k3"}


def test_rows_survive_reopening(store_factory: tuple[str, Path, str]) -> None:
    first = _open(*store_factory)
    first.issue_token(_build, _token())
    first.revoke_by_sha256("a" * 64, 100, _recorded)
    first.close()
    second = _open(*store_factory)
    try:
        assert second.find_token("t1").revoked_at == 100  # type: ignore[union-attr]
        assert second.audit_head() == (2, f"{2:064x}")  # the issue, then the revocation
    finally:
        second.close()


def test_audit_rows_are_read_in_order_across_batches(store: SqlStore) -> None:
    for _ in range(1001):
        store.append_audit(_build)
    assert [r.seq for r in store.audit_rows()] == list(range(1, 1002))


def test_a_job_end_is_recorded_once_and_matched_by_check_run_id(store: SqlStore) -> None:
    now = int(time.time())
    assert store.record_job_end("1", "2", "3", "44", now, now + 600) is True
    assert store.record_job_end("1", "2", "3", "44", now + 5, now + 9999) is False
    assert store.job_ended("1", "2", "3", "44")
    assert not store.job_ended("1", "2", "3", "45")  # a sibling job of the same run
    assert store.job_ended("1", "2", "3", "")  # no check_run_id: any ended job of the attempt
    assert not store.job_ended("1", "2", "4", "")


def test_expired_job_ends_and_deliveries_are_purged_in_bounded_batches(store: SqlStore) -> None:
    now = int(time.time())
    for i in range(PURGE_BATCH + 3):
        store.record_job_end("1", "2", "3", str(i), now - 100, now - 10)
    store.record_job_end("9", "9", "1", "1", now, now + 600)  # purges one batch
    assert store.job_ended("1", "2", "3", "")  # the rest waits for the next write
    store.record_job_end("9", "9", "1", "2", now, now + 600)
    assert not store.job_ended("1", "2", "3", "")
    assert store.job_ended("9", "9", "1", "1")


def test_a_delivery_is_claimed_once_until_it_expires(store: SqlStore) -> None:
    now = int(time.time())
    assert not store.delivery_seen("d-1")
    assert store.claim_delivery("d-1", now, now + 60) is True
    assert store.claim_delivery("d-1", now, now + 60) is False
    assert store.delivery_seen("d-1")
    store.claim_delivery("d-2", now + 120, now + 180)  # purges d-1, expired by then
    assert not store.delivery_seen("d-1")


_EXPIRY_FILTERS = {
    # the DELETE every jti claim runs, and the token purge's filter
    "jti_replay_by_expiry": "DELETE FROM jti_replay WHERE expires_at < 1",
    "tokens_by_expiry": "DELETE FROM tokens WHERE expires_at < 1",
}


@pytest.mark.parametrize("index", sorted(_EXPIRY_FILTERS))
def test_expiry_filters_use_an_index_not_a_scan(
    store_factory: tuple[str, Path, str], index: str
) -> None:
    kind, tmp_path, dsn = store_factory
    _open(kind, tmp_path, dsn).close()  # creates (or upgrades) the schema
    statement = _EXPIRY_FILTERS[index]
    if kind == "sqlite":
        conn = sqlite3.connect(tmp_path / "store.db")
        try:
            plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}"))
        finally:
            conn.close()
    else:
        with psycopg.connect(dsn, autocommit=True) as pg:
            pg.execute("SET enable_seqscan = off")  # an empty table: only an index avoids it
            plan = " ".join(row[0] for row in pg.execute(f"EXPLAIN {statement}").fetchall())
    assert index in plan, plan


def test_sqlite_reads_do_not_wait_for_a_write_in_progress(tmp_path: Path) -> None:
    store = open_store("sqlite", path=tmp_path / "store.db")
    token = _token()  # once: its times are the clock's when it was made
    store.issue_token(_build, token)
    in_write, release = threading.Event(), threading.Event()

    def slow_build(seq: int, prev: str) -> tuple[str, str]:
        in_write.set()  # inside the write transaction, holding the store's writer
        release.wait(10)
        return _build(seq, prev)

    writer = threading.Thread(target=store.append_audit, args=(slow_build,))
    writer.start()
    found: list[TokenRecord | None] = []
    try:
        assert in_write.wait(5)
        reader = threading.Thread(target=lambda: found.append(store.find_token("t1")))
        reader.start()
        reader.join(5)
        assert found == [token], "the read waited for the write"
        assert store.audit_head() == (1, f"{1:064x}")  # the uncommitted record is not seen
    finally:
        release.set()
        writer.join(10)
    assert store.audit_head() == (2, f"{2:064x}")
    store.close()


def _jti(jti: str = "j1") -> JtiClaim:
    return JtiClaim("https://issuer", jti, int(time.time()) + 300)


_JOB = JobKey("1", "2", "1", "7")


def _counts(store: SqlStore) -> tuple[int, int]:
    """(audit records, token rows)."""
    head = store.audit_head()
    return (head[0] if head else 0), len(store.find_tokens("a" * 64))


def test_the_issuing_transaction_claims_the_jti_with_the_record_and_the_token(
    store: SqlStore,
) -> None:
    assert store.issue_token(_build, _token(), jti=_jti(), job=_JOB) == 1
    assert _counts(store) == (1, 1)
    with pytest.raises(IssueRefused) as refused:
        store.issue_token(_build, _token("t2"), jti=_jti(), job=_JOB)
    assert refused.value.reason == "replayed"
    assert _counts(store) == (1, 1)  # neither the record nor the token of the replay
    assert store.claim_jti("https://issuer", "j1", int(time.time()) + 300) is False


def test_the_issuing_transaction_refuses_an_ended_job_and_keeps_the_jti_unused(
    store: SqlStore,
) -> None:
    now = int(time.time())
    store.record_job_end("1", "2", "1", "7", now, now + 900)
    with pytest.raises(IssueRefused) as refused:
        store.issue_token(_build, _token(), jti=_jti(), job=_JOB)
    assert refused.value.reason == "job_completed"
    assert _counts(store) == (0, 0)
    assert store.claim_jti("https://issuer", "j1", now + 300) is True  # rolled back too
    other_job = JobKey("1", "2", "1", "8")
    assert store.issue_token(_build, _token(), jti=_jti("j2"), job=other_job) == 1


def test_concurrent_issues_of_one_jti_commit_exactly_once(store: SqlStore) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(16)

    def issue(i: int) -> None:
        barrier.wait(5)
        try:
            store.issue_token(_build, _token(f"t{i}"), jti=_jti("same"), job=_JOB)
            outcomes.append("issued")
        except IssueRefused as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=issue, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["issued"] + ["replayed"] * 15
    assert _counts(store) == (1, 1)
    assert [r.seq for r in store.audit_rows()] == [1]


def test_audit_rows_stop_at_the_head_the_reader_names(store: SqlStore) -> None:
    for _ in range(5):
        store.append_audit(_build)
    assert [r.seq for r in store.audit_rows(up_to=3)] == [1, 2, 3]
    assert [r.seq for r in store.audit_rows(up_to=0)] == []


def test_an_audit_page_is_one_bounded_read_after_a_seq(store: SqlStore) -> None:
    for _ in range(7):
        store.append_audit(_build)
    assert [r.seq for r in store.audit_page(0, 3)] == [1, 2, 3]
    assert [r.seq for r in store.audit_page(3, 3)] == [4, 5, 6]
    assert [r.seq for r in store.audit_page(6, 3)] == [7]
    assert store.audit_page(7, 3) == []
    assert [r.seq for r in store.audit_page(2, 10, up_to=4)] == [3, 4]
    with pytest.raises(ValueError, match="1 to 10000"):
        store.audit_page(0, 0)
