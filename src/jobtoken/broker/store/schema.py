"""The store's tables and indexes, one text for SQLite and PostgreSQL (``{blob}`` is
``BLOB`` or ``BYTEA``).

Every filter of the exchange's hot path and of the expiry purges has an index, so
their cost does not grow with the number of rows: ``jti_replay.expires_at`` (the
expired-``jti`` delete of every claim), ``tokens.expires_at`` (the token purge),
``tokens.token_sha256`` (revoke, introspect, proxy) and the job columns (webhook).
"""

from __future__ import annotations

from jobtoken.broker.store.job_ends import JOB_END_SCHEMA

SCHEMA = (
    """
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
CREATE INDEX IF NOT EXISTS tokens_by_expiry ON tokens (expires_at);
CREATE TABLE IF NOT EXISTS jti_replay (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX IF NOT EXISTS jti_replay_by_expiry ON jti_replay (expires_at);
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
);
"""
    + JOB_END_SCHEMA
)
