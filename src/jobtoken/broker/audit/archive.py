"""Audit retention that keeps the chain verifiable: ``jobtoken broker audit archive``.

:func:`archive_before` runs, in order:

1. read the chain head and the last checkpoint (where the stored chain starts);
2. find the records, in order from the checkpoint, up to the first one made at or
   after ``before`` (a contiguous prefix: nothing after a kept record leaves); the
   records are streamed, never all in memory;
3. check that prefix as a chain from the checkpoint (an archive of a broken chain
   is refused: run ``audit verify``);
4. write it as JSONL (the ``audit export`` format: each line holds ``seq``,
   ``prev_hash`` and ``hash``) to a new file, flushed to disk, and hash the file;
5. in one transaction, record the prefix's last (seq, hash) as a checkpoint, with the
   file's SHA-256, and delete the archived records.

``audit verify`` then checks the stored records from the checkpoint on; the archive
file is the chain before it, checkable on its own (its last ``hash`` is the
checkpoint's). Keep archive files where the broker cannot write.

Public API: :func:`archive_before`, :class:`ArchiveError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from jobtoken.broker.audit.chain import check_chain, export_jsonl
from jobtoken.broker.errors import BrokerFailure
from jobtoken.broker.store import AuditCheckpoint, AuditRow, SqlStore

__all__ = ["ArchiveError", "archive_before"]


class ArchiveError(BrokerFailure):
    """Nothing was archived; the text says why."""


def archive_before(store: SqlStore, before: datetime, output: Path) -> AuditCheckpoint | None:
    """Archive every record made before ``before`` (aware datetime) to ``output``; the
    checkpoint recorded, or None when no record is that old."""
    head = store.audit_head()
    start = store.audit_checkpoint()
    if head is None:
        return None
    last = _last_before(store.audit_rows(up_to=head[0]), before)
    if last is None:
        return None
    problems = check_chain(store.audit_rows(up_to=last.seq), (last.seq, last.hash), start)
    if problems:
        raise ArchiveError(f"the chain is broken, nothing archived: {problems[0]}")
    try:
        with open(output, "x", encoding="utf-8") as out:  # never overwrite an archive
            count = export_jsonl(store.audit_rows(up_to=last.seq), out)
            out.flush()
            os.fsync(out.fileno())
    except FileExistsError:
        raise ArchiveError(f"{output} exists: archive to a new file") from None
    except OSError as exc:
        raise ArchiveError(f"cannot write {output}: {exc.strerror}") from None
    checkpoint = AuditCheckpoint(
        seq=last.seq,
        hash=last.hash,
        archived_before=before.isoformat(),
        archived_at=int(time.time()),
        records=count,
        file_sha256=hashlib.sha256(output.read_bytes()).hexdigest(),
    )
    try:
        store.archive_audit(checkpoint)
    except ValueError as exc:
        raise ArchiveError(f"{exc}; {output} holds the export, the store is unchanged") from None
    return checkpoint


def _last_before(rows: Iterable[AuditRow], before: datetime) -> AuditRow | None:
    last = None
    for row in rows:
        try:
            made = datetime.fromisoformat(json.loads(row.record)["time"].replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ArchiveError(
                f"the chain is broken, nothing archived: record {row.seq} has no readable "
                "time (run `jobtoken broker audit verify`)"
            ) from None
        if made >= before:
            break
        last = row
    return last
