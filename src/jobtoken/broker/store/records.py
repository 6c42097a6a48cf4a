"""Rows the broker keeps: issued tokens, signing keys, audit entries."""

from __future__ import annotations

from dataclasses import dataclass


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
class SealedRecord:
    """A row of a table holding sealed secrets, addressed for re-wrapping."""

    table: str  # "connector_credentials" or "signing_keys"
    key: str
    sealed: bytes
