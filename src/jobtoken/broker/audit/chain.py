"""The audit trail: one append-only, hash-chained record per broker decision.

Every decision — a token issued, a request denied (with its reason code), a token
revoked, a token introspected, a connector's grant connected or refreshed (or its
refresh failed), a sealed credential file opened — becomes one record. Each record
carries its sequence number and the hash of the record before it, and its own hash is
``SHA-256(prev_hash || "\\n" || canonical JSON)``; the newest (seq, hash) is also kept
as the chain head. :func:`check_chain` therefore detects a record altered (its hash no
longer matches), removed (a gap in ``seq`` or, at the end, a head that points past the
last record) or reordered (a ``prev_hash`` that no longer links). A record holds the
SHA-256 of a token, never the token; the issuing transaction
(``SqlStore.issue_token``) commits the record with the token's row, before the token is
returned.

Public API: :class:`AuditEntry`, :class:`AuditLog`, :func:`check_chain`,
:func:`export_jsonl`, :data:`AUDITED_CLAIMS`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TextIO

from jobtoken.broker.store import (
    GENESIS_HASH,
    AuditBuilder,
    AuditRow,
    SqlStore,
)

__all__ = ["AUDITED_CLAIMS", "AuditEntry", "AuditLog", "check_chain", "export_jsonl"]

#: the caller's OIDC claims copied into every record
AUDITED_CLAIMS = (
    "iss",
    "sub",
    "repository",
    "repository_id",
    "repository_owner_id",
    "workflow_ref",
    "job_workflow_ref",
    "sha",
    "ref",
    "event_name",
    "environment",
    "run_id",
    "run_attempt",
    "check_run_id",
    "runner_environment",
    "actor_id",
)
_MAX_FIELD_CHARS = 512
DECISIONS = (
    "issued",
    "denied",
    "revoked",
    "introspected",
    # a connector's OAuth grant at its provider (upstream/grants.py)
    "connected",
    "refreshed",
    "refresh_failed",
    # a job's own upstream token (a GitHub App installation token) revoked at GitHub
    "revoked_upstream",
    # a connector's sealed credential file opened for use (connectors/credentials.py)
    "credential_opened",
)


@dataclass(frozen=True)
class AuditEntry:
    """What a decision records. ``token_sha256`` is a hash, never a token."""

    decision: str
    reason: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict)
    connector: str = ""
    requested_scopes: tuple[str, ...] = ()
    granted_scopes: tuple[str, ...] = ()
    ttl: int = 0
    token_sha256: str = ""
    token_id: str = ""
    client_address: str = ""
    user_agent: str = ""
    client_id: str = ""  # the authenticated client (introspection), if any
    request_id: str = ""  # the broker's id of the request (its log line, X-Request-Id)
    #: a sealed credential file opened (``credential_opened``): its path and SHA-256;
    #: in the record only when set
    file: str = ""
    file_sha256: str = ""

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ValueError(f"unknown audit decision {self.decision!r}")

    def to_fields(self) -> dict[str, Any]:
        files = {"file": _bounded(self.file), "file_sha256": self.file_sha256}
        return {
            **(files if self.file_sha256 else {}),
            "decision": self.decision,
            "reason": _bounded(self.reason),
            "claims": {
                name: _bounded(str(self.claims[name]))
                for name in AUDITED_CLAIMS
                if self.claims.get(name) is not None
            },
            "connector": _bounded(self.connector),
            "requested_scopes": [_bounded(s) for s in self.requested_scopes[:64]],
            "granted_scopes": [_bounded(s) for s in self.granted_scopes[:64]],
            "ttl": self.ttl,
            "token_sha256": self.token_sha256,
            "token_id": _bounded(self.token_id),
            "client_address": _bounded(self.client_address),
            "user_agent": _bounded(self.user_agent),
            "client_id": _bounded(self.client_id),
            "request_id": _bounded(self.request_id),
        }


class AuditLog:
    """Appends entries to the store's chain."""

    def __init__(self, store: SqlStore, clock: Any = time.time) -> None:
        self._store = store
        self._clock = clock

    def record(self, entry: AuditEntry) -> int:
        """Commit ``entry`` as the next record of the chain; returns its seq. (An issued
        token is committed with its record by ``SqlStore.issue_token``, which takes
        :meth:`builder`.)"""
        return self._store.append_audit(self.builder(entry))

    def builder(self, entry: AuditEntry) -> AuditBuilder:
        """How the store writes ``entry`` once it knows its place in the chain (for a
        store method that appends records within a transaction of its own)."""
        fields = entry.to_fields()
        fields["time"] = _rfc3339(self._clock())

        def build(seq: int, prev_hash: str) -> tuple[str, str]:
            text = _canonical({**fields, "seq": seq, "prev_hash": prev_hash})
            return text, chain_hash(prev_hash, text)

        return build


def chain_hash(prev_hash: str, record_text: str) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + record_text.encode()).hexdigest()


def check_chain(
    rows: Iterable[AuditRow],
    head: tuple[int, str] | None,
    start: tuple[int, str] | None = None,
) -> list[str]:
    """Every break in the chain, as sentences naming the record; empty means intact.

    ``start`` is the checkpoint (seq, hash) the rows follow, when a prefix of the
    chain was archived (``audit/archive.py``): the first row must be the one after it
    and link to its hash.
    """
    problems: list[str] = []
    expected_seq, prev_hash = (1, GENESIS_HASH) if start is None else (start[0] + 1, start[1])
    for row in rows:
        if row.seq != expected_seq:
            problems.append(
                f"record {row.seq}: expected record {expected_seq} (records removed or reordered)"
            )
        if row.prev_hash != prev_hash:
            problems.append(f"record {row.seq}: does not link to the record before it")
        try:
            body = json.loads(row.record)
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("seq") != row.seq:
            problems.append(f"record {row.seq}: its content names another position")
        elif body.get("prev_hash") != row.prev_hash:
            problems.append(f"record {row.seq}: its content names another predecessor")
        if chain_hash(row.prev_hash, row.record) != row.hash:
            problems.append(f"record {row.seq}: content altered (hash mismatch)")
        expected_seq, prev_hash = row.seq + 1, row.hash
    last = (expected_seq - 1, prev_hash) if expected_seq > 1 else None
    if head != last:
        if head is None:
            problems.append("the chain head is missing")
        elif last is None or head[0] != last[0]:
            problems.append(
                f"the chain head names record {head[0]} but the last record is "
                f"{0 if last is None else last[0]} (records removed at the end)"
            )
        else:
            problems.append(f"record {head[0]}: differs from the chain head (altered)")
    return problems


def export_jsonl(rows: Iterable[AuditRow], out: TextIO) -> int:
    """Write one JSON object per record (with its hash) to ``out``; returns the count."""
    count = 0
    for row in rows:
        body = json.loads(row.record)
        body["hash"] = row.hash
        out.write(_canonical(body) + "\n")
        count += 1
    return count


def _canonical(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _bounded(text: str) -> str:
    return text if len(text) <= _MAX_FIELD_CHARS else text[:_MAX_FIELD_CHARS] + "…"


def _rfc3339(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
