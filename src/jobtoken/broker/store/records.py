"""Rows the broker keeps (issued tokens, signing keys, audit entries), the cursor every
backend provides, and the store's exceptions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from jobtoken.broker.errors import BrokerError, BrokerFailure

#: the columns of ``tokens``, in :class:`TokenRecord`'s field order
TOKEN_COLUMNS = (
    "token_id, token_sha256, kind, connector, scopes, subject, repository_id, run_id, "  # noqa: S105
    "run_attempt, check_run_id, issued_at, expires_at, revoked_at, shared_credential"
)


class Cursor(Protocol):
    """The part of a DB-API cursor the queries use (sqlite3 and psycopg both have it)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: Any, params: Sequence[Any] = ...) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ...) -> list[Any]: ...


class StoreError(BrokerFailure):
    """The store is unreachable, cannot commit, or holds what this broker did not write.

    The broker answers ``503 temporarily_unavailable`` while it cannot commit; the text
    names the condition (never a value from a row).
    """

    code, http_status = "temporarily_unavailable", 503


class IssueRefused(BrokerError):
    """The token must not be issued: ``reason`` is ``replayed`` (the ID token's ``jti``
    was used already) or ``job_completed`` (its job ended). Raised by the issuing
    transaction, which then commits none of it, and by the exchange's read ahead of it."""

    def __init__(self, reason: str) -> None:
        super().__init__("invalid_grant", _SPENT[reason], reason=reason)


#: what a caller is told of an ID token that must not be used again
_SPENT = {
    "replayed": "this ID token was already used; request a fresh ID token for each exchange",
    "job_completed": (
        "the job this ID token belongs to has completed; a finished job gets no "
        "new tokens (request the token in a step of a running job)"
    ),
}


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
    """One issued token (or passthrough lease). The token itself is never stored.

    ``shared_credential``: a passthrough lease of the connector's own credential (a
    static key, an OAuth grant's access token), which every job of the connector gets.
    Its SHA-256 is then the same for each job's lease, so holding the credential does
    not say whose lease it is: revoking one by possession needs an ID token of its job.
    """

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
    shared_credential: bool = False

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> TokenRecord:
        """A row of :data:`TOKEN_COLUMNS`. Both backends store the flag as 0 or 1, and
        only a passthrough lease can be of a shared credential (``schema.py``, v6)."""
        record = cls(*row)
        return replace(record, shared_credential=bool(row[-1]) and record.kind == "passthrough")

    def active(self, now: int) -> bool:
        return self.revoked_at is None and self.issued_at <= now < self.expires_at


@dataclass(frozen=True)
class SigningKeyRow:
    kid: str
    alg: str
    state: str  # "current", "previous" or "retired"
    created_at: int
    sealed: bytes


@dataclass(frozen=True, repr=False)
class SealKeyRow:
    """The broker's X25519 key pair for sealed credential files (``secrets/seal_keys.py``):
    ``sealed`` is its private key under the master key."""

    key_id: str
    state: str  # "current"; older keys would be "previous"
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


#: given (seq, prev_hash) of the record to write, returns (record text, its hash)
AuditBuilder = Callable[[int, str], tuple[str, str]]


#: the tables holding sealed blobs: table -> (its key column, the prefix of the record
#: id the blob is sealed under, ``sealing.Envelope``'s associated data)
SEALED_TABLES = {
    "connector_credentials": ("name", "connector"),
    "signing_keys": ("kid", "signing-key"),
    "upstream_grants": ("connector", "grant"),
    "job_upstream_tokens": ("token_id", "job-upstream"),
    "seal_keys": ("key_id", "seal-key"),
}


@dataclass(frozen=True)
class SealedRecord:
    """A row of a table holding sealed secrets, addressed for re-wrapping."""

    table: str  # a key of SEALED_TABLES
    key: str
    sealed: bytes

    @property
    def record_id(self) -> str:
        """The id the blob is sealed under."""
        return sealed_record_id(self.table, self.key)


def sealed_record_id(table: str, key: str) -> str:
    """The id a blob of ``table`` (a key of :data:`SEALED_TABLES`) is sealed under: the
    envelope's associated data, so that a blob moved to another row does not open."""
    return f"{SEALED_TABLES[table][1]}:{key}"


#: a grant's states: usable, or dead at the provider until an operator connects again
GRANT_READY = "ready"
GRANT_NEEDS_REAUTHORIZATION = "needs_reauthorization"


@dataclass(frozen=True, repr=False)
class GrantRow:
    """A connector's OAuth grant at the provider: the sealed refresh and access tokens,
    and the lease that makes one refresh at a time, across every broker process."""

    connector: str
    sealed: bytes
    #: +1 at every refresh or connect: a caller that saw an access token of generation
    #: g fail upstream asks for one newer than g
    generation: int
    state: str
    access_expires_at: int
    refreshed_at: int
    lease_owner: str
    lease_until_ms: int
    #: after a failed refresh, none is tried before this
    retry_at_ms: int


GRANT_COLUMNS = (
    "connector, sealed, generation, state, access_expires_at, refreshed_at, lease_owner, "
    "lease_until_ms, retry_at_ms"
)
