"""Rows the broker keeps (issued tokens, signing keys, audit entries), the cursor every
backend provides, and the store's exceptions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: the columns of ``tokens``, in :class:`TokenRecord`'s field order
TOKEN_COLUMNS = (
    "token_id, token_sha256, kind, connector, scopes, subject, repository_id, run_id, "  # noqa: S105
    "run_attempt, check_run_id, issued_at, expires_at, revoked_at"
)


class Cursor(Protocol):
    """The part of a DB-API cursor the queries use (sqlite3 and psycopg both have it)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: Any, params: Sequence[Any] = ...) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ...) -> list[Any]: ...


class StoreError(Exception):
    """The store is unreachable, cannot commit, or holds what this broker did not write.

    The broker answers ``503 temporarily_unavailable`` while it cannot commit; the text
    names the condition (never a value from a row).
    """


class IssueRefused(Exception):
    """The issuing transaction found that the token must not be issued; nothing of it
    was committed. ``reason`` is ``replayed`` (the ID token's ``jti`` was used already)
    or ``job_completed`` (its job ended)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class JtiClaim:
    """An ID token's single use: ``(issuer, jti)`` stays claimed until ``expires_at``."""

    issuer: str
    jti: str
    expires_at: int


@dataclass(frozen=True)
class JobKey:
    """The job a token is bound to (``check_run_id`` is empty when the ID token had none)."""

    repository_id: str
    run_id: str
    run_attempt: str
    check_run_id: str


@dataclass(frozen=True)
class TokenRecord:
    """One issued token (or passthrough lease). The token itself is never stored."""

    token_id: str
    token_sha256: str
    kind: str
    connector: str
    scopes: str
    subject: str
    repository_id: str
    run_id: str
    run_attempt: str
    check_run_id: str
    issued_at: int
    expires_at: int
    revoked_at: int | None = None

    def active(self, now: int) -> bool:
        return self.revoked_at is None and self.issued_at <= now < self.expires_at


@dataclass(frozen=True)
class SigningKeyRow:
    kid: str
    alg: str
    state: str  # "current", "previous" or "retired"
    created_at: int
    sealed: bytes


@dataclass(frozen=True)
class AuditRow:
    seq: int
    record: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditCheckpoint:
    """The head of an archived prefix of the chain: the stored chain starts after it."""

    seq: int
    hash: str
    archived_before: str  # the RFC 3339 time bound the archive was made with
    archived_at: int
    records: int
    file_sha256: str  # of the archive file, as written


@dataclass(frozen=True)
class SealedRecord:
    """A row of a table holding sealed secrets, addressed for re-wrapping."""

    table: str  # "connector_credentials" or "signing_keys"
    key: str
    sealed: bytes
