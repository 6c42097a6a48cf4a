"""Group commit: one writer thread per store runs every write, and the writes that
arrive together share one transaction and so one durable commit.

A caller hands :meth:`BatchWriter.run` a body (a function of a cursor) and blocks until
the transaction that ran it has committed; only then does it get the body's return
value, so a caller that has a result has a durable row. While one commit is on its way
to disk the next bodies queue up, and the writer takes all of them (up to
``max_batch``) into the next transaction. Each body runs inside a savepoint of that
transaction:

- a body that raises an exception of its own (a refusal such as a replayed ``jti``)
  is rolled back to its savepoint alone; its caller gets that exception and the other
  bodies of the batch commit;
- a database error (disk full, connection lost) or a failed ``COMMIT`` fails the whole
  batch: every caller of it gets :class:`StoreError`, and nothing of it is durable.

A caller waits at most ``wait_seconds`` for its answer, then gets :class:`StoreError`;
the body may still commit later (as with any request whose answer is lost), which
every body of the store tolerates: each is a single conditional statement or an
insert of fresh ids.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from jobtoken.broker.store.records import Cursor, StoreError

T = TypeVar("T")

#: most bodies one transaction takes
MAX_BATCH = 256
#: how long a caller waits for its commit before it is told the store is unavailable
WAIT_SECONDS = 30.0


@dataclass(eq=False)
class _Write(Generic[T]):
    body: Callable[[Cursor], T]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


_STOP: Any = object()


class BatchWriter:
    """Runs write bodies on one thread, many to a transaction (see the module docstring).

    ``begin`` opens a write transaction: entering it yields a cursor inside ``BEGIN``,
    leaving it normally commits, leaving it by an exception rolls back; it raises
    :class:`StoreError` for a database that cannot be reached. ``database_errors`` are
    the driver's exception types: one of them raised by a body fails the whole batch.
    """

    def __init__(
        self,
        begin: Callable[[], AbstractContextManager[Cursor]],
        database_errors: tuple[type[BaseException], ...],
        *,
        name: str = "jobtoken-store-writer",
        max_batch: int = MAX_BATCH,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        self._begin, self._database_errors = begin, database_errors
        self._max_batch, self._wait_seconds = max_batch, wait_seconds
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def run(self, body: Callable[[Cursor], T]) -> T:
        """Run ``body`` in a write transaction; its result once that has committed."""
        if self._closed:
            raise StoreError("the store is closed")
        write: _Write[T] = _Write(body)
        self._queue.put(write)
        if not write.done.wait(self._wait_seconds):
            raise StoreError(f"the store did not commit within {self._wait_seconds:g} s")
        if write.error is not None:
            raise write.error
        result: T = write.result
        return result

    def close(self) -> None:
        """Finish the writes already queued, then stop the thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join(timeout=self._wait_seconds)

    def _loop(self) -> None:
        while True:
            batch: list[_Write[Any]] = []
            item = self._queue.get()
            stop = item is _STOP
            if not stop:
                batch.append(item)
            while not stop and len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                else:
                    batch.append(item)
            if batch:
                self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Write[Any]]) -> None:
        savepoints = len(batch) > 1
        try:
            with self._begin() as cur:
                for write in batch:
                    self._run_one(cur, write, savepoints)
        except StoreError as exc:
            self._fail(batch, exc)
        except self._database_errors as exc:
            self._fail(batch, StoreError(f"the store could not commit: {first_line(exc)}"))
        except BaseException as exc:  # every caller must get an answer
            self._fail(batch, StoreError(f"the store writer failed: {type(exc).__name__}"))
        finally:
            for write in batch:
                write.done.set()

    def _run_one(self, cur: Cursor, write: _Write[Any], savepoints: bool) -> None:
        if savepoints:
            cur.execute("SAVEPOINT batch_write")
        try:
            write.result = write.body(cur)
        except self._database_errors:
            raise
        except Exception as exc:  # the body's own refusal, for its caller
            write.error = exc
            if not savepoints:
                raise _OwnRefusal("the write refused; its own error is kept") from None
            cur.execute("ROLLBACK TO SAVEPOINT batch_write")
        if savepoints:
            cur.execute("RELEASE SAVEPOINT batch_write")

    @staticmethod
    def _fail(batch: list[_Write[Any]], exc: StoreError) -> None:
        for write in batch:
            if isinstance(exc, _OwnRefusal):
                continue  # the one body of the batch keeps its own exception
            write.error = exc
            write.result = None


class _OwnRefusal(StoreError):
    """A batch of one whose body refused: roll back, and keep the body's exception."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
