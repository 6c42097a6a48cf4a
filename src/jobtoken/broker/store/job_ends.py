"""Ended jobs and seen webhook deliveries: the rows that make job end final.

``ended_jobs`` holds each job GitHub reported completed (repository id, run id, run
attempt, check run id) until every ID token that job could have fetched has expired,
plus leeway (``keep_until``); ``/token`` refuses an exchange bound to a row of it.
``webhook_deliveries`` holds the ``X-GitHub-Delivery`` ids already handled, so that a
redelivery is dropped. Both tables are purged in bounded batches (``PURGE_BATCH`` rows
per write), on the index on ``keep_until`` (schema version 2, ``schema.py``).

:class:`JobEndQueries` is part of :class:`~jobtoken.broker.store.base.SqlStore`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobtoken.broker.store.records import JobKey
from jobtoken.broker.store.transactions import Transactions

if TYPE_CHECKING:
    from jobtoken.broker.store.records import Cursor

#: most expired rows one write deletes, so that no request pays for a large backlog
PURGE_BATCH = 500

_JOB = "repository_id = ? AND run_id = ? AND run_attempt = ?"


class JobEndQueries(Transactions):
    """The queries on ``ended_jobs`` and ``webhook_deliveries``."""

    def record_job_end(
        self,
        repository_id: str,
        run_id: str,
        run_attempt: str,
        check_run_id: str,
        now: int,
        keep_until: int,
    ) -> bool:
        """Record a job as ended; False if it already was (a late or repeated report
        changes nothing: the first row and its ``keep_until`` stay)."""

        def body(cur: Cursor) -> bool:
            self._purge(cur, "ended_jobs", "repository_id, run_id, run_attempt, check_run_id", now)
            cur.execute(
                self._sql(
                    "INSERT INTO ended_jobs (repository_id, run_id, run_attempt, check_run_id, "
                    "ended_at, keep_until) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                    "(repository_id, run_id, run_attempt, check_run_id) DO NOTHING"
                ),
                (repository_id, run_id, run_attempt, check_run_id, now, keep_until),
            )
            return cur.rowcount == 1

        return self._write(body)

    def job_ended(
        self, repository_id: str, run_id: str, run_attempt: str, check_run_id: str
    ) -> bool:
        """Whether this job ended. Without a ``check_run_id`` the broker cannot tell the
        jobs of a run attempt apart, so any ended job of that attempt counts."""
        job = JobKey(repository_id, run_id, run_attempt, check_run_id)
        return self._read(lambda cur: self._job_ended_in(cur, job))

    def _job_ended_in(self, cur: Cursor, job: JobKey) -> bool:
        where = _JOB
        params: tuple[str, ...] = (job.repository_id, job.run_id, job.run_attempt)
        if job.check_run_id:
            where, params = f"{_JOB} AND check_run_id = ?", (*params, job.check_run_id)
        cur.execute(self._sql(f"SELECT 1 FROM ended_jobs WHERE {where} LIMIT 1"), params)  # noqa: S608
        return cur.fetchone() is not None

    def delivery_seen(self, delivery_id: str) -> bool:
        def body(cur: Cursor) -> bool:
            cur.execute(
                self._sql("SELECT 1 FROM webhook_deliveries WHERE delivery_id = ?"), (delivery_id,)
            )
            return cur.fetchone() is not None

        return self._read(body)

    def claim_delivery(self, delivery_id: str, now: int, keep_until: int) -> bool:
        """Record a delivery as handled; False if it already was."""

        def body(cur: Cursor) -> bool:
            self._purge(cur, "webhook_deliveries", "delivery_id", now)
            cur.execute(
                self._sql(
                    "INSERT INTO webhook_deliveries (delivery_id, keep_until) VALUES (?, ?) "
                    "ON CONFLICT (delivery_id) DO NOTHING"
                ),
                (delivery_id, keep_until),
            )
            return cur.rowcount == 1

        return self._write(body)

    def _purge(self, cur: Cursor, table: str, key: str, now: int) -> None:
        cur.execute(
            self._sql(
                f"DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} "  # noqa: S608
                f"WHERE keep_until < ? LIMIT {PURGE_BATCH})"
            ),
            (now,),
        )
