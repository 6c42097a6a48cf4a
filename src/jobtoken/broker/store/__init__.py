"""The broker's persistent state: issued tokens, jti replay, sealed connector
credentials, OAuth grants and signing keys, and the audit chain — one schema, two backends.

Public API: :func:`open_store`, :class:`SqlStore` (the interface every backend has),
the row types, :class:`StoreError`, :class:`IssueRefused`, :data:`LATEST_VERSION`.
"""

from __future__ import annotations

from pathlib import Path

from jobtoken.broker.store.audit_queries import GENESIS_HASH
from jobtoken.broker.store.base import REVOKE_BATCH, SqlStore
from jobtoken.broker.store.records import (
    GRANT_NEEDS_REAUTHORIZATION,
    GRANT_READY,
    AuditBuilder,
    AuditCheckpoint,
    AuditRow,
    GrantRow,
    IssueRefused,
    JobKey,
    JtiClaim,
    SealedRecord,
    SealKeyRow,
    SigningKeyRow,
    StoreError,
    TokenRecord,
    sealed_record_id,
)
from jobtoken.broker.store.schema import LATEST_VERSION, Migration

__all__ = [
    "GENESIS_HASH",
    "GRANT_NEEDS_REAUTHORIZATION",
    "GRANT_READY",
    "LATEST_VERSION",
    "REVOKE_BATCH",
    "AuditBuilder",
    "AuditCheckpoint",
    "AuditRow",
    "GrantRow",
    "IssueRefused",
    "JobKey",
    "JtiClaim",
    "Migration",
    "SealKeyRow",
    "SealedRecord",
    "SigningKeyRow",
    "SqlStore",
    "StoreError",
    "TokenRecord",
    "open_store",
    "sealed_record_id",
]


def open_store(
    kind: str, *, path: Path | None = None, dsn: str | None = None, migrate: bool = False
) -> SqlStore:
    """Open the configured store: create an empty one, refuse one whose schema is not
    this broker's (``migrate=True`` upgrades an older one instead)."""
    if kind == "sqlite":
        if path is None:
            raise StoreError("the sqlite store needs a path")
        from jobtoken.broker.store.sqlite import SqliteStore

        return SqliteStore(path, migrate=migrate)
    if kind == "postgres":
        if not dsn:
            raise StoreError("the postgres store needs a DSN (store.dsn_file or store.dsn_env)")
        from jobtoken.broker.store.postgres import PostgresStore

        return PostgresStore(dsn, migrate=migrate)
    raise StoreError(f"unknown store kind {kind!r}; use 'sqlite' or 'postgres'")
