"""Revocation (RFC 7009) and introspection (RFC 7662) of issued tokens.

Both look a token up by its SHA-256 — the store never holds a token. Revocation works
by possession and reveals nothing: an unknown, expired or already revoked token is
"revoked" just the same. A job that kept only the token id (the action's ``token-id``
output) revokes with that id plus a fresh ID token of the same job: the broker revokes
the token only if it is bound to that repository, run, attempt and job
(``check_run_id``; a token minted without one only for an ID token without one).

A passthrough lease of a *shared credential* (every job of the connector gets the same
value) is revoked only with a fresh ID token of its job: possession alone is refused with
``unsupported_token_type`` (RFC 7009 §2.2.1), and introspection answers for all its
active leases at once (docs/security.md, "Leases of a shared credential").

Introspection answers exactly ``{"active": false}`` for any token that is unknown,
expired or revoked.
A job's tokens are revoked together when GitHub reports the job completed
(``http/webhook.py``). Every revocation and introspection is audited, with the id of the
HTTP request that asked for it (``request_id``); a revocation commits
in the same transaction as its audit record. Revocations are rows in the store, so
they survive a restart. After each revocation commits, ``after_revoke`` gets the
revoked rows: a job's own upstream tokens (GitHub App installation tokens) are then
revoked at GitHub (``upstream/job_tokens.py``).

Public API: :class:`TokenRegistry`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from jobtoken.broker.audit.chain import AuditEntry, AuditLog
from jobtoken.broker.errors import BrokerError
from jobtoken.broker.ops.metrics import Metrics
from jobtoken.broker.store import REVOKE_BATCH, AuditBuilder, JobKey, SqlStore, TokenRecord
from jobtoken.broker.tokens.exchange import token_sha256

__all__ = ["TokenRegistry"]

INACTIVE: dict[str, Any] = {"active": False}
MAX_TOKEN_CHARS = 16 * 1024
SHARED_CREDENTIAL = (
    "this is a credential every job of its connector is given, so holding it does not say "
    "whose lease to revoke: send an ID token of the job with it (subject_token and "
    "subject_token_type, as the jobtoken revoke action does), or revoke by token_id"
)


class TokenRegistry:
    def __init__(
        self,
        store: SqlStore,
        audit: AuditLog,
        metrics: Metrics,
        issuer: str,
        clock: Callable[[], float] = time.time,
        after_revoke: Callable[[list[TokenRecord]], object] | None = None,
    ) -> None:
        self._store, self._audit, self._metrics = store, audit, metrics
        self._issuer, self._clock = issuer, clock
        #: called with the tokens each revocation committed (revokes their upstream tokens)
        self._after_revoke = after_revoke or (lambda rows: None)

    def revoke(
        self,
        token: str,
        *,
        job: JobKey | None = None,
        claims: Mapping[str, object] | None = None,
        client_address: str = "",
        user_agent: str = "",
        request_id: str = "",
    ) -> None:
        """Revoke `token` by possession; with `job` (proved by the caller with a fresh ID
        token, whose `claims` the audit record keeps), only what is bound to that job.
        BrokerError ``unsupported_token_type`` (audited) for a shared credential's lease
        without `job`."""
        if len(token) > MAX_TOKEN_CHARS:
            return
        digest, now = token_sha256(token), int(self._clock())
        reason = "revoke_endpoint" if job is None else "revoke_endpoint_for_job"
        revoked = self._store.revoke_by_sha256(
            digest,
            now,
            self._revocation_record(reason, client_address, user_agent, request_id),
            job,
        )
        self._after_revoke(revoked)
        self._metrics.count("jobtoken_revocations_total", len(revoked), path="revoke_endpoint")
        if revoked:
            return
        shared = job is None and any(
            r.shared_credential and r.active(now) for r in self._store.find_tokens(digest)
        )
        self._audit.record(
            AuditEntry(
                decision="denied" if shared else "revoked",
                reason="shared_credential" if shared else "unknown_or_already_revoked",
                claims=claims or {},
                token_sha256=digest,
                client_address=client_address,
                user_agent=user_agent,
                request_id=request_id,
            )
        )
        if shared:
            raise BrokerError(
                "unsupported_token_type", SHARED_CREDENTIAL, reason="shared_credential"
            )

    def revoke_own(
        self,
        token_id: str,
        *,
        job: JobKey,
        claims: Mapping[str, object],
        client_address: str = "",
        user_agent: str = "",
        request_id: str = "",
    ) -> None:
        """Revoke a token by id for the job it is bound to (proved by a fresh ID token of
        that job, whose `claims` the audit record keeps); a token of another job, or an
        unknown id, is left alone silently."""
        if len(token_id) <= 128:
            revoked = self._store.revoke_by_id(
                token_id,
                int(self._clock()),
                self._revocation_record("revoke_by_id", client_address, user_agent, request_id),
                job,
            )
            if revoked is not None:
                self._metrics.count("jobtoken_revocations_total", path="revoke_endpoint")
                self._after_revoke([revoked])
                return
        self._audit.record(
            AuditEntry(
                decision="revoked",
                reason="unknown_or_already_revoked",
                claims=claims,
                token_id=token_id[:128],
                client_address=client_address,
                user_agent=user_agent,
                request_id=request_id,
            )
        )

    def refuse(
        self,
        reason: str,
        *,
        token_id: str = "",
        client_address: str = "",
        user_agent: str = "",
        request_id: str = "",
    ) -> None:
        """Audit a revocation or introspection request refused before any lookup (e.g. a
        bad ID token, no token)."""
        self._audit.record(
            AuditEntry(
                decision="denied",
                reason=reason,
                token_id=token_id[:128],
                client_address=client_address,
                user_agent=user_agent,
                request_id=request_id,
            )
        )

    def revoke_job(
        self,
        *,
        repository_id: str,
        run_id: str,
        run_attempt: str,
        check_run_id: str,
        client_address: str = "",
        user_agent: str = "",
        request_id: str = "",
    ) -> int:
        """Revoke every token of a job, in bounded transactions that each commit the
        revocations with their audit records: a crash between two leaves the rest
        unrevoked, for GitHub's redelivery (the delivery is claimed only after this)."""
        record = self._revocation_record("job_completed", client_address, user_agent, request_id)
        total = 0
        while True:
            revoked = self._store.revoke_job(
                repository_id, run_id, run_attempt, check_run_id, int(self._clock()), record
            )
            total += len(revoked)
            self._metrics.count("jobtoken_revocations_total", len(revoked), path="webhook")
            self._after_revoke(revoked)
            if len(revoked) < REVOKE_BATCH:
                return total

    def introspect(
        self,
        token: str,
        *,
        client_id: str,
        client_connectors: frozenset[str] = frozenset(),
        client_address: str = "",
        request_id: str = "",
    ) -> dict[str, Any]:
        """RFC 7662 for `token`; a client limited to `client_connectors` (non-empty) learns
        nothing of another connector's token: it gets ``{"active": false}``. A shared
        credential's active leases answer together (see the module's docstring)."""
        now = int(self._clock())
        digest = token_sha256(token) if len(token) <= MAX_TOKEN_CHARS else ""
        active = [r for r in (self._store.find_tokens(digest) if digest else []) if r.active(now)]
        permitted = [r for r in active if not client_connectors or r.connector in client_connectors]
        reason = "active" if permitted else "inactive"
        if active and not permitted:
            reason = "connector_not_permitted_for_client"
        elif len(permitted) > 1:
            reason = "active_shared_credential"
        self._audit.record(
            AuditEntry(
                decision="introspected",
                reason=reason,
                connector=permitted[0].connector if permitted else "",
                token_sha256=digest,
                token_id=permitted[0].token_id if len(permitted) == 1 else "",
                client_address=client_address,
                client_id=client_id,
                request_id=request_id,
            )
        )
        self._metrics.count(
            "jobtoken_introspections_total", result="active" if permitted else "inactive"
        )
        if not permitted:
            return dict(INACTIVE)
        bodies = [self._introspection(r) for r in permitted]
        # a shared credential's leases: only what every one of them says is true of it,
        # and the span of time they cover together
        body = {k: v for k, v in bodies[0].items() if all(b.get(k) == v for b in bodies[1:])}
        if len(permitted) > 1:
            body["exp"] = max(r.expires_at for r in permitted)
            body["iat"] = body["nbf"] = min(r.issued_at for r in permitted)
        if permitted[0].kind == "passthrough":
            body["active_leases"] = len(permitted)
        return body

    def _introspection(self, active: TokenRecord) -> dict[str, Any]:
        """RFC 7662's answer for one active token."""
        body: dict[str, Any] = {
            "active": True,
            "scope": active.scopes,
            "token_type": "Bearer",
            "exp": active.expires_at,
            "iat": active.issued_at,
            "nbf": active.issued_at,
            "sub": active.subject,
            "aud": active.connector,
            "iss": self._issuer,
            "jti": active.token_id,
            "token_kind": active.kind,
            "repository_id": active.repository_id,
            "run_id": active.run_id,
            "run_attempt": active.run_attempt,
        }
        if active.check_run_id:
            body["check_run_id"] = active.check_run_id
        return body

    def _revocation_record(
        self, reason: str, client_address: str, user_agent: str, request_id: str
    ) -> Callable[[TokenRecord], AuditBuilder]:
        def record(token: TokenRecord) -> AuditBuilder:
            return self._audit.builder(
                AuditEntry(
                    decision="revoked",
                    reason=reason,
                    claims={
                        "repository_id": token.repository_id,
                        "run_id": token.run_id,
                        "run_attempt": token.run_attempt,
                        "check_run_id": token.check_run_id or None,
                        "sub": token.subject,
                    },
                    connector=token.connector,
                    granted_scopes=tuple(token.scopes.split()),
                    token_sha256=token.token_sha256,
                    token_id=token.token_id,
                    client_address=client_address,
                    user_agent=user_agent,
                    request_id=request_id,
                )
            )

        return record
