"""The store's schema as numbered migrations, one text for SQLite and PostgreSQL
(``{blob}`` is ``BLOB`` or ``BYTEA``), and the rules for applying them.

- A store records every migration applied to it in ``schema_version``; its version
  is the highest. A store from before versioning (it has ``tokens`` but no
  ``schema_version``) is version 1, the schema the broker first shipped.
- Each migration runs in the write transaction that records it, under the store's
  write lock, after reading the version again: two processes starting on one database
  apply it once. (Its statements say ``IF NOT EXISTS`` where both backends can; SQLite's
  ``ALTER TABLE … ADD COLUMN`` cannot.)
- :func:`ensure_schema` creates an empty store, and refuses a store that is behind
  (``jobtoken broker migrate`` upgrades it) or ahead (a newer broker wrote it).

Every filter of the exchange's hot path and of the expiry purges has an index, so
their cost does not grow with the number of rows: ``jti_replay.expires_at``,
``tokens.expires_at``, ``tokens.token_sha256`` (revoke, introspect, proxy), the job
columns (webhook) and ``keep_until`` of the job-end tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from jobtoken.broker.store.records import Cursor, StoreError

__all__ = ["LATEST_VERSION", "MIGRATIONS", "Migration", "ensure_schema"]


@dataclass(frozen=True)
class Migration:
    version: int
    summary: str
    statements: str


_V1 = """
CREATE TABLE IF NOT EXISTS tokens (
    token_id      TEXT PRIMARY KEY,
    token_sha256  TEXT NOT NULL,
    kind          TEXT NOT NULL,
    connector     TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    repository_id TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    run_attempt   TEXT NOT NULL,
    check_run_id  TEXT NOT NULL,
    issued_at     BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX IF NOT EXISTS tokens_by_sha256 ON tokens (token_sha256);
CREATE INDEX IF NOT EXISTS tokens_by_job ON tokens (repository_id, run_id, run_attempt);
CREATE TABLE IF NOT EXISTS jti_replay (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE TABLE IF NOT EXISTS connector_credentials (
    name       TEXT PRIMARY KEY,
    sealed     {blob} NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid        TEXT PRIMARY KEY,
    alg        TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sealed     {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq       BIGINT PRIMARY KEY,
    record    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
)
"""

_V2 = """
CREATE INDEX IF NOT EXISTS jti_replay_by_expiry ON jti_replay (expires_at);
CREATE INDEX IF NOT EXISTS tokens_by_expiry ON tokens (expires_at);
CREATE TABLE IF NOT EXISTS ended_jobs (
    repository_id TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    run_attempt   TEXT NOT NULL,
    check_run_id  TEXT NOT NULL,
    ended_at      BIGINT NOT NULL,
    keep_until    BIGINT NOT NULL,
    PRIMARY KEY (repository_id, run_id, run_attempt, check_run_id)
);
CREATE INDEX IF NOT EXISTS ended_jobs_by_keep_until ON ended_jobs (keep_until);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_id TEXT PRIMARY KEY,
    keep_until  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_keep_until ON webhook_deliveries (keep_until)
"""

_V3 = """
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq             BIGINT PRIMARY KEY,
    hash            TEXT NOT NULL,
    archived_before TEXT NOT NULL,
    archived_at     BIGINT NOT NULL,
    records         BIGINT NOT NULL,
    file_sha256     TEXT NOT NULL
)
"""

_V4 = """
CREATE TABLE IF NOT EXISTS upstream_grants (
    connector         TEXT PRIMARY KEY,
    sealed            {blob} NOT NULL,
    generation        BIGINT NOT NULL,
    state             TEXT NOT NULL,
    access_expires_at BIGINT NOT NULL,
    refreshed_at      BIGINT NOT NULL,
    lease_owner       TEXT NOT NULL,
    lease_until_ms    BIGINT NOT NULL,
    retry_at_ms       BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS job_upstream_tokens (
    token_id            TEXT PRIMARY KEY,
    connector           TEXT NOT NULL,
    sealed              {blob} NOT NULL,
    expires_at          BIGINT NOT NULL,
    revoked_upstream_at BIGINT
);
CREATE INDEX IF NOT EXISTS job_upstream_tokens_by_expiry ON job_upstream_tokens (expires_at)
"""

_V5 = """
CREATE TABLE IF NOT EXISTS seal_keys (
    key_id     TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sealed     {blob} NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS seal_keys_one_current ON seal_keys (state)
    WHERE state = 'current'
"""

#: 1 by default: a row that a broker from before version 6 writes (or wrote) without
#: the column is, if it is a passthrough lease, taken for a shared credential's lease
#: (a minted token's flag means nothing: see TokenRecord)
_V6 = """
ALTER TABLE tokens ADD COLUMN shared_credential INTEGER NOT NULL DEFAULT 1
"""

MIGRATIONS = (
    Migration(1, "tokens, jti replay, sealed credentials, signing keys, audit chain", _V1),
    Migration(2, "ended jobs, webhook deliveries, expiry indexes", _V2),
    Migration(3, "audit checkpoints (audit archive)", _V3),
    Migration(4, "OAuth grants of connectors, per-job upstream tokens", _V4),
    Migration(5, "the broker's seal key (X25519) for sealed credential files", _V5),
    Migration(6, "tokens.shared_credential: leases of a credential shared by jobs", _V6),
)
LATEST_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at BIGINT NOT NULL
)
"""

#: whether a table exists, asked the backend's way (a failed query would abort a
#: PostgreSQL transaction)
TableExists = Callable[[Cursor, str], bool]


def stored_version(cur: Cursor, table_exists: TableExists) -> int:
    """The store's schema version; 0 for an empty store."""
    if table_exists(cur, "schema_version"):
        cur.execute("SELECT MAX(version) FROM schema_version")
        row = cur.fetchone()
        if row is not None and row[0] is not None:
            return int(row[0])
    return 1 if table_exists(cur, "tokens") else 0


def ensure_schema(
    cur: Cursor, *, table_exists: TableExists, blob: str, placeholder: str, migrate: bool
) -> list[Migration]:
    """Bring the store to :data:`LATEST_VERSION` or refuse it; the migrations applied.

    Without ``migrate``, only an empty store is changed (it is created whole).
    """
    version = stored_version(cur, table_exists)
    if version > LATEST_VERSION:
        raise StoreError(
            f"the store's schema is version {version}, newer than this broker knows "
            f"({LATEST_VERSION}): run a broker release that knows it"
        )
    if 0 < version < LATEST_VERSION and not migrate:
        raise StoreError(
            f"the store's schema is version {version} and this broker needs version "
            f"{LATEST_VERSION}: run `jobtoken broker migrate --config FILE` first"
        )
    pending = [m for m in MIGRATIONS if m.version > version]
    if not pending:
        return []
    cur.execute(_VERSION_TABLE)
    insert = "INSERT INTO schema_version (version, applied_at) VALUES (?, ?) ON CONFLICT DO NOTHING"
    for migration in [m for m in MIGRATIONS if m.version <= version] if version else []:
        # a store from before versioning: record what it already has
        cur.execute(insert.replace("?", placeholder), (migration.version, int(time.time())))
    for migration in pending:
        for statement in migration.statements.format(blob=blob).split(";"):
            if statement.strip():
                cur.execute(statement)
        cur.execute(insert.replace("?", placeholder), (migration.version, int(time.time())))
    return pending
