"""Group commit: concurrent writes share a transaction, a refusal rolls back only its
own write, a database error fails the whole batch, and nobody waits forever.

The writer runs on a real SQLite file (WAL, ``synchronous=FULL``) through a ``begin``
that counts the transactions it opens.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jobtoken.broker.store.records import Cursor, StoreError
from jobtoken.broker.store.writer import BatchWriter


class CountingSqlite:
    """A SQLite file with one table ``t(v)`` and a ``begin`` for the writer."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("CREATE TABLE t (v INTEGER PRIMARY KEY)")
        self.transactions = 0
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    @contextmanager
    def begin(self) -> Iterator[Cursor]:
        self.transactions += 1
        self.entered.set()
        self.hold.wait(10)
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def values(self) -> list[int]:
        return [row[0] for row in self.conn.execute("SELECT v FROM t ORDER BY v")]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[CountingSqlite]:
    counting = CountingSqlite(tmp_path / "w.db")
    yield counting
    counting.conn.close()


def _insert(value: int) -> Body:
    def body(cur: Cursor) -> int:
        cur.execute("INSERT INTO t (v) VALUES (?)", (value,))
        return value

    return body


Body = Callable[[Cursor], object]


class Refused(Exception):
    pass


def _refuse(cur: Cursor) -> None:
    cur.execute("INSERT INTO t (v) VALUES (999)")
    raise Refused("no")


def _run_all(writer: BatchWriter, bodies: list[Body]) -> list[object]:
    """Run every body from its own thread; each thread's result or exception."""
    results: list[object] = [None] * len(bodies)

    def call(i: int) -> None:
        try:
            results[i] = writer.run(bodies[i])
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def _queued_behind_a_held_commit(
    db: CountingSqlite, writer: BatchWriter, bodies: list[Body]
) -> list[object]:
    """Hold the first transaction open until every other body is queued behind it."""
    db.hold.clear()
    first = threading.Thread(target=writer.run, args=(_insert(0),))
    first.start()
    assert db.entered.wait(5)
    results: list[object] = []
    runner = threading.Thread(target=lambda: results.extend(_run_all(writer, bodies)))
    runner.start()
    deadline = threading.Event()
    while writer._queue.qsize() < len(bodies) and not deadline.wait(0.01):
        pass
    db.hold.set()
    first.join(10)
    runner.join(10)
    return results


def test_writes_queued_during_a_commit_share_the_next_transaction(db: CountingSqlite) -> None:
    writer = BatchWriter(db.begin, (sqlite3.Error,))
    try:
        results = _queued_behind_a_held_commit(db, writer, [_insert(i) for i in range(1, 41)])
    finally:
        writer.close()
    assert sorted(r for r in results if isinstance(r, int)) == list(range(1, 41))
    assert db.values() == list(range(41))
    assert db.transactions == 2  # the held one, then all 40 in one commit


def test_a_refusal_rolls_back_only_its_own_write(db: CountingSqlite) -> None:
    writer = BatchWriter(db.begin, (sqlite3.Error,))
    try:
        bodies: list[Body] = [_insert(1), _refuse, _insert(2)]
        results = _queued_behind_a_held_commit(db, writer, bodies)
    finally:
        writer.close()
    assert db.transactions == 2
    assert [type(r) for r in results].count(Refused) == 1
    assert sorted(r for r in results if isinstance(r, int)) == [1, 2]
    assert db.values() == [0, 1, 2]  # 999 of the refused body was rolled back


def test_a_refusal_alone_commits_nothing(db: CountingSqlite) -> None:
    writer = BatchWriter(db.begin, (sqlite3.Error,))
    try:
        with pytest.raises(Refused):
            writer.run(_refuse)
        assert writer.run(_insert(5)) == 5
    finally:
        writer.close()
    assert db.values() == [5]


def test_a_database_error_fails_the_whole_batch(db: CountingSqlite) -> None:
    writer = BatchWriter(db.begin, (sqlite3.Error,))
    try:
        # the second insert of 1 breaks the primary key: a database error
        results = _queued_behind_a_held_commit(db, writer, [_insert(1), _insert(1), _insert(2)])
    finally:
        writer.close()
    assert all(isinstance(r, StoreError) for r in results), results
    assert db.values() == [0]  # nothing of the failed batch is durable


def test_a_failing_begin_reaches_every_caller_as_store_error(tmp_path: Path) -> None:
    @contextmanager
    def begin() -> Iterator[Cursor]:
        raise sqlite3.OperationalError("database or disk is full")
        yield  # pragma: no cover

    writer = BatchWriter(begin, (sqlite3.Error,))
    try:
        with pytest.raises(StoreError, match="disk is full"):
            writer.run(_insert(1))
    finally:
        writer.close()


def test_a_caller_waits_a_bounded_time(db: CountingSqlite) -> None:
    writer = BatchWriter(db.begin, (sqlite3.Error,), wait_seconds=0.2)
    db.hold.clear()
    try:
        with pytest.raises(StoreError, match="did not commit within"):
            writer.run(_insert(1))
    finally:
        db.hold.set()
        writer.close()


def test_close_finishes_queued_writes_then_refuses_new_ones(db: CountingSqlite) -> None:
    writer = BatchWriter(db.begin, (sqlite3.Error,))
    assert writer.run(_insert(1)) == 1
    writer.close()
    with pytest.raises(StoreError, match="closed"):
        writer.run(_insert(2))
    assert db.values() == [1]
