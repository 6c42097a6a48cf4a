"""The audit trail for people: records read from the store in pages by ``seq``,
filtered, and written one line each (``jobtoken broker audit tail|list``).

Reads are bounded: one page of :data:`PAGE` rows at a time (``SqlStore.audit_page``),
never the whole table. A line holds the record's time, seq, decision, reason,
connector, repository, scopes (granted, else requested), request id and token id
(and the client id of an introspection, the file of a ``credential_opened``); the
repository is ``id:N`` where a record has only its id (a revocation's). A
record holds no token, only its SHA-256, so no line can show one. Every value comes
from a request or a config and is printed bare only when it is plain (letters,
digits and ``._:/@+,#-``); anything else is JSON-quoted, so a connector name sent as
``x repository=victim`` or with terminal escapes cannot forge a field or a line.

Public API: :class:`AuditFilter`, :data:`PAGE`, :data:`Record`, :func:`read_records`,
:func:`tail_start`, :func:`audit_line`, :func:`json_line`, :func:`follow`,
:func:`parse_time`.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from jobtoken.broker.audit.chain import export_jsonl
from jobtoken.broker.store import AuditRow, SqlStore, StoreError
from jobtoken.wire.grammar import parse_ascii_int

__all__ = [
    "PAGE",
    "AuditFilter",
    "Record",
    "audit_line",
    "follow",
    "json_line",
    "parse_time",
    "read_records",
    "tail_start",
]

#: rows per read from the store
PAGE = 500
_PLAIN = re.compile(r"[A-Za-z0-9._:/@+,#-]{1,200}")
_AGE = re.compile(r"([0-9]+)([smhd])")
_AGE_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: the oldest age an audit query names (an age past year 1 would be an OverflowError)
_MAX_AGE_SECONDS = 100 * 366 * 86400

Record = tuple[AuditRow, dict[str, Any] | None]  # the body is None when it does not parse


@dataclass(frozen=True)
class AuditFilter:
    """Which records to show: made in ``[since, until)``, of a decision, of a connector."""

    since: datetime | None = None
    until: datetime | None = None
    decision: str | None = None
    connector: str | None = None

    def matches(self, body: dict[str, Any] | None) -> bool:
        if body is None:  # unreadable: shown (as such) unless a filter asks for a field
            return self == AuditFilter()
        if self.decision is not None and body.get("decision") != self.decision:
            return False
        if self.connector is not None and body.get("connector") != self.connector:
            return False
        if self.since is None and self.until is None:
            return True
        made = _record_time(body)
        if made is None:
            return False
        return (self.since is None or made >= self.since) and (
            self.until is None or made < self.until
        )


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """A UTC time from an age (``90s``, ``15m``, ``2h``, ``7d``: that long before
    ``now``), a date (``2026-11-01``) or an RFC 3339 time; ValueError otherwise."""
    age = _AGE.fullmatch(text)
    if age is not None:
        count = parse_ascii_int(age[1], 12)  # 12 digits of any unit are over 100 years
        seconds = _MAX_AGE_SECONDS + 1 if count is None else count * _AGE_SECONDS[age[2]]
        if seconds > _MAX_AGE_SECONDS:
            raise ValueError(f"{text[:40]!r} is an age of more than 100 years")
        return (now or datetime.now(timezone.utc)) - timedelta(seconds=seconds)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text[:40]!r} is not an age (15m, 2h, 7d), a date (2026-11-01) or an RFC 3339 time"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def tail_start(store: SqlStore, count: int) -> tuple[int, int]:
    """(after, head): the seq after which the last ``count`` stored records start, and
    the head's seq (0 for an empty trail)."""
    head = store.audit_head()
    last = head[0] if head else 0
    return max(last - count, 0), last


def read_records(store: SqlStore, after: int, *, up_to: int | None = None) -> Iterator[Record]:
    """The records with ``seq > after`` (up to ``up_to``), a page at a time."""
    while True:
        page = store.audit_page(after, PAGE, up_to=up_to)
        for row in page:
            yield row, _body(row)
        if len(page) < PAGE:
            return
        after = page[-1].seq


def follow(
    store: SqlStore,
    after: int,
    emit: Callable[[Record], None],
    *,
    interval: float = 1.0,
    warn: Callable[[str], None] = lambda text: None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Emit each record appended after ``after``, polling every ``interval`` seconds,
    until interrupted. A store that stops answering is reported once (``warn``) and
    polled on; the records written meanwhile follow when it answers again."""
    failing = False
    while True:
        try:
            page = store.audit_page(after, PAGE)
        except StoreError as exc:
            if not failing:
                warn(f"the store does not answer ({str(exc)[:200]}); retrying")
            failing = True
            sleep(interval)
            continue
        if failing:
            warn("the store answers again")
            failing = False
        for row in page:
            emit((row, _body(row)))
            after = row.seq
        if len(page) < PAGE:
            sleep(interval)


def audit_line(record: Record) -> str:
    """One record as a line for people (see the module docstring for what it holds)."""
    row, body = record
    if body is None:
        return f"record {row.seq}: unreadable (run `jobtoken broker audit verify`)"
    claims = body.get("claims")
    claims = claims if isinstance(claims, dict) else {}
    # a revocation's record has the token's repository id, not the caller's name
    repository = claims.get("repository") or (
        f"id:{claims['repository_id']}" if claims.get("repository_id") else ""
    )
    scopes = body.get("granted_scopes") or body.get("requested_scopes") or []
    fields = [
        ("connector", body.get("connector", "")),
        ("repository", repository),
        ("scopes", ",".join(str(s) for s in scopes) if isinstance(scopes, list) else ""),
        ("request_id", body.get("request_id", "")),
        ("token_id", body.get("token_id", "")),
    ]
    fields += [(name, body[name]) for name in ("client_id", "file") if body.get(name)]
    when, decision, reason = (_value(body.get(k, "")) for k in ("time", "decision", "reason"))
    start = f"{when} {row.seq:>6} {decision:<17} {reason}"
    return start + "".join(f" {name}={_value(value)}" for name, value in fields)


def json_line(record: Record) -> str:
    """One record as ``audit export`` writes it (with its hash), without the newline."""
    row, body = record
    if body is None:
        return json.dumps({"seq": row.seq, "unreadable": True, "hash": row.hash})
    out = io.StringIO()
    export_jsonl([row], out)
    return out.getvalue().rstrip("\n")


def _value(value: object) -> str:
    text = "" if value is None else str(value)
    if not text:
        return "-"
    if _PLAIN.fullmatch(text):
        return text
    return json.dumps(text if len(text) <= 200 else text[:199] + "…", ensure_ascii=True)


def _body(row: AuditRow) -> dict[str, Any] | None:
    try:
        body = json.loads(row.record)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _record_time(body: dict[str, Any]) -> datetime | None:
    text = body.get("time")
    if not isinstance(text, str):
        return None
    try:
        made = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return made if made.tzinfo else made.replace(tzinfo=timezone.utc)
