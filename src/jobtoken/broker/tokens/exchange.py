"""The token exchange, top to bottom: ID token → connector → scopes → policy → token.

:meth:`TokenExchange.exchange` is ``POST /token`` without HTTP. It runs, in order:

1. verify the subject token (``oidc/verifier.py``: issuer allowlist, signature,
   audience, times; its single use is step 7) — ``invalid_grant`` otherwise; then the
   repository's rate limit (``ops/rate_limits.py``) — 429 ``temporarily_unavailable``,
   audited once a minute per repository, counted always;
2. the connector (``resource`` / ``audience``) is configured — ``invalid_target``;
3. the requested scopes are well formed and, where the connector lists its scopes,
   known to it — ``invalid_scope`` naming the scope;
4. the repository admins' policy allows every requested scope for these claims —
   its error, naming the failing check;
5. TTL = min(requested or default, policy ``max_ttl``, connector ``max_ttl``,
   broker ``max_ttl_seconds``);
6. the upstream side (``upstream/exchange_side.py``): an OAuth connector's grant must be
   connected and alive; a GitHub App connector mints this job's installation token
   (after a read that the ID token is unused and its job has not ended, so that a
   replay mints nothing upstream); either may cap the TTL. Then mint (``minted``) or
   lease the upstream token (``passthrough``: the stored key, the grant's access token
   or the job's own installation token);
7. the issuing transaction (``SqlStore.issue_token``), and only then return the token:
   the ID token's ``jti`` claimed (``invalid_grant``, ``replayed``), its job not ended
   (``invalid_grant``, ``job_completed``), the audit record and the token's row, in one
   durable commit. A refusal commits none of it, and a crash before the commit leaves
   the ID token unused, so a retry with it can succeed; an installation token minted
   for a refused exchange is revoked at GitHub.

Every refusal is audited too, with its reason code, before the error is returned.
The store is down (``StoreError``): nothing is issued or audited, and the caller
answers 503.
This module blocks (network for JWKS, disk for the store): call it from a worker thread.

Public API: :class:`TokenExchange`, :class:`TokenRequest`, :class:`ExchangedToken`,
:class:`PolicyDecider`, :func:`token_sha256`.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from jobtoken.broker.audit.chain import AuditEntry, AuditLog
from jobtoken.broker.connectors.credentials import ConnectorCredentials, CredentialUnusable
from jobtoken.broker.connectors.model import Connector
from jobtoken.broker.errors import BrokerError
from jobtoken.broker.oidc.verifier import IdTokenVerifier, VerifiedClaims
from jobtoken.broker.ops.logs import log_event
from jobtoken.broker.ops.metrics import Metrics
from jobtoken.broker.ops.rate_limits import RateLimited, RateLimiter
from jobtoken.broker.secrets.envelope import Envelope
from jobtoken.broker.store import IssueRefused, JobKey, JtiClaim, SqlStore, StoreError, TokenRecord
from jobtoken.broker.tokens.signing import JobBinding, TokenSigner
from jobtoken.broker.upstream.exchange_side import ExchangeUpstream, UpstreamPart
from jobtoken.policy.evaluate import PolicyDecision
from jobtoken.wire.grammar import MAX_SCOPES, SCOPE
from jobtoken.wire.oauth_terms import ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE

__all__ = [
    "ExchangedToken",
    "PolicyDecider",
    "TokenExchange",
    "TokenRequest",
    "token_sha256",
]


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class PolicyDecider(Protocol):
    def __call__(
        self, claims: VerifiedClaims, connector: str, scopes: tuple[str, ...], ttl: int
    ) -> PolicyDecision: ...


@dataclass(frozen=True, repr=False)
class TokenRequest:
    """A `POST /token` request, parsed: what the exchange is asked for."""

    subject_token: str
    connector: str
    scope: str
    ttl: int | None = None
    client_address: str = ""
    user_agent: str = ""
    request_id: str = ""


@dataclass(frozen=True, repr=False)
class ExchangedToken:
    """What the exchange issued; ``response()`` is the RFC 8693 §2.2.1 body."""

    access_token: str
    issued_token_type: str
    expires_in: int
    scopes: tuple[str, ...]
    token_id: str
    expires_at: int
    #: a passthrough lease whose upstream token the broker revokes upstream with it
    #: (a GitHub App installation token); None for a minted token
    upstream_revoked_at_job_end: bool | None = None
    #: what made ``expires_in`` shorter than the request's ttl (a key of
    #: :data:`~jobtoken.wire.oauth_terms.TTL_LIMITS`), or ""
    ttl_limited_by: str = ""

    def response(self) -> dict[str, object]:
        body: dict[str, object] = {
            "access_token": self.access_token,
            "issued_token_type": self.issued_token_type,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": " ".join(self.scopes),
            "token_id": self.token_id,
        }
        if self.upstream_revoked_at_job_end is not None:
            body["upstream_revoked_at_job_end"] = self.upstream_revoked_at_job_end
        if self.ttl_limited_by:
            body["ttl_limited_by"] = self.ttl_limited_by
        return body


class TokenExchange:
    def __init__(
        self,
        *,
        verifier: IdTokenVerifier,
        policy: PolicyDecider,
        connectors: Mapping[str, Connector],
        signer: TokenSigner,
        store: SqlStore,
        envelope: Envelope,
        audit: AuditLog,
        metrics: Metrics,
        default_ttl: int,
        max_ttl: int,
        upstream: ExchangeUpstream | None = None,
        repository_limit: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
        credentials: ConnectorCredentials | None = None,
    ) -> None:
        self._credentials = credentials or ConnectorCredentials(store, envelope, audit)
        self._repository_limit = repository_limit or RateLimiter(0, 1)
        self._verifier, self._policy, self._connectors = verifier, policy, connectors
        self._signer, self._store, self._envelope, self._audit = signer, store, envelope, audit
        self._metrics = metrics
        self._upstream = upstream or ExchangeUpstream(None, None)
        self._default_ttl, self._max_ttl, self._clock = default_ttl, max_ttl, clock

    def exchange(self, request: TokenRequest) -> ExchangedToken:
        claims: Mapping[str, object] = {}
        scopes: tuple[str, ...] = ()
        try:
            verified = self._verify(request.subject_token)
            claims = verified.claims
            verdict = self._repository_limit.take(verified.repository_id)
            if not verdict.allowed:
                raise RateLimited(
                    verdict, "repository", "too many token requests for this repository"
                )
            connector = self._connector(request.connector)
            scopes = self._scopes(request.scope, connector)
            requested_ttl = self._default_ttl if request.ttl is None else request.ttl
            outcome = self._policy(verified, connector.name, scopes, requested_ttl)
            if not outcome.allowed:
                if outcome.invalid_at:  # where, never the content: the file is not ours
                    log_event(
                        "policy file invalid",
                        logging.WARNING,
                        at=outcome.invalid_at,
                        repository=verified.repository,
                        hint="jobtoken policy check FILE says what to fix",
                    )
                raise BrokerError(
                    outcome.oauth_error or "unauthorized_client",
                    outcome.description,
                    reason=outcome.reason,
                )
            limits = (
                (outcome.max_ttl, outcome.ttl_limit),
                (connector.max_ttl, "connector"),
                (self._max_ttl, "broker"),
            )
            ttl = min(requested_ttl, *(limit for limit, _ in limits))
            limited_by = next((by for limit, by in limits if limit == ttl), "")
            if ttl < 1:
                raise BrokerError("invalid_request", "the token lifetime must be positive")
            issued, record, upstream = self._issue(verified, connector, scopes, ttl)
            if ttl < requested_ttl:
                issued = replace(issued, ttl_limited_by=limited_by)
            try:
                self._commit(
                    request,
                    verified,
                    issued,
                    record,
                    self._upstream.encrypt(connector, record.token_id, upstream),
                )
            except BaseException:
                self._upstream.discard(connector, upstream)
                raise
        except RateLimited as exc:
            self._metrics.count("jobtoken_rate_limited_total", limit=exc.limit)
            if exc.report:  # the first of its window; the others are counted only
                self.refuse(request, exc, claims=claims, scopes=scopes)
            raise
        except StoreError:
            raise  # the broker's failure, not a refusal: the edge answers the outage
        except BrokerError as exc:
            self.refuse(request, exc, claims=claims, scopes=scopes)
            raise
        self._metrics.count(
            "jobtoken_exchanges_total", outcome="issued", reason="", connector=connector.name
        )
        return issued

    def refuse(
        self,
        request: TokenRequest,
        exc: BrokerError,
        *,
        claims: Mapping[str, object] | None = None,
        scopes: tuple[str, ...] = (),
    ) -> None:
        """Audit (and count) a refused exchange, also one refused before the exchange
        proper (grant type, token types, parameters, ``ttl``, body problems)."""
        requested = scopes or tuple(request.scope.split()[:MAX_SCOPES])
        self._audit.record(
            AuditEntry(
                decision="denied",
                reason=exc.reason,
                claims=claims or {},
                connector=request.connector[:128],
                requested_scopes=tuple(s[:128] for s in requested),
                client_address=request.client_address,
                user_agent=request.user_agent,
                request_id=request.request_id,
            )
        )
        known = request.connector if request.connector in self._connectors else ""
        log_event(
            "token refused",
            reason=exc.reason,
            connector=known,
            repository=str((claims or {}).get("repository", ""))[:140],
            request_id=request.request_id,
        )
        self._metrics.count(
            "jobtoken_exchanges_total", outcome="denied", reason=exc.reason, connector=known
        )

    def _verify(self, subject_token: str) -> VerifiedClaims:
        return self._verifier.verify(subject_token, claim_jti=False)  # or InvalidIdToken

    def _commit(
        self,
        request: TokenRequest,
        verified: VerifiedClaims,
        issued: ExchangedToken,
        record: TokenRecord,
        upstream: bytes | None,
    ) -> None:
        entry = AuditEntry(
            decision="issued",
            reason="policy_allowed",
            claims=verified.claims,
            connector=record.connector,
            requested_scopes=issued.scopes,
            granted_scopes=issued.scopes,
            ttl=issued.expires_in,
            token_sha256=record.token_sha256,
            token_id=record.token_id,
            client_address=request.client_address,
            user_agent=request.user_agent,
            request_id=request.request_id,
        )
        single_use = JtiClaim(verified.iss, verified.jti, self._verifier.single_use_until(verified))
        job = JobKey(record.repository_id, record.run_id, record.run_attempt, record.check_run_id)
        # the issuing transaction; IssueRefused when the jti was used or the job ended
        # meanwhile, and then nothing of it is committed
        self._store.issue_token(
            self._audit.builder(entry), record, jti=single_use, job=job, upstream=upstream
        )

    def _connector(self, name: str) -> Connector:
        connector = self._connectors.get(name)
        if connector is None:
            raise BrokerError(
                "invalid_target",
                "no connector of that name on this broker (the resource parameter); "
                "check the connector input",
                reason="unknown_connector",
            )
        return connector

    def _scopes(self, scope: str, connector: Connector) -> tuple[str, ...]:
        names = scope.split(" ")
        if not scope or len(names) > MAX_SCOPES or any(not SCOPE.match(n) for n in names):
            raise BrokerError(
                "invalid_scope",
                f"scope must be 1 to {MAX_SCOPES} scope names separated by single spaces",
                reason="malformed_scope",
            )
        for name in names:
            if connector.scopes and name not in connector.scopes:
                raise BrokerError(
                    "invalid_scope",
                    f"scope {name} is not a scope of connector {connector.name} (its scopes: "
                    f"{' '.join(connector.scopes[:MAX_SCOPES])}); the broker's operators "
                    "configure the connector, not the repository admins",
                    reason="unknown_scope",
                )
        return tuple(dict.fromkeys(names))

    def _issue(
        self, verified: VerifiedClaims, connector: Connector, scopes: tuple[str, ...], ttl: int
    ) -> tuple[ExchangedToken, TokenRecord, UpstreamPart]:
        now = int(self._clock())
        binding = JobBinding(
            repository_id=verified.repository_id,
            run_id=verified.run_id,
            run_attempt=verified.run_attempt,
            check_run_id=verified.check_run_id or "",
        )
        repository = str(verified.claims.get("repository", ""))
        if connector.per_job_upstream:
            self._refuse_spent(verified, binding, now)
        upstream = self._upstream.prepare(connector, repository, scopes, ttl, now)
        ttl = upstream.ttl
        if connector.kind == "minted":
            minted = self._signer.sign(
                connector=connector.name,
                scopes=scopes,
                ttl=ttl,
                subject=verified.sub,
                binding=binding,
                now=now,
            )
            token, token_id, token_type = minted.token, minted.jti, JWT_TOKEN_TYPE
        else:
            token = upstream.token or self._lease(connector)
            token_id, token_type = secrets.token_urlsafe(18), ACCESS_TOKEN_TYPE
        record = TokenRecord(
            token_id=token_id,
            token_sha256=token_sha256(token),
            kind=connector.kind,
            connector=connector.name,
            scopes=" ".join(scopes),
            subject=verified.sub,
            repository_id=binding.repository_id,
            run_id=binding.run_id,
            run_attempt=binding.run_attempt,
            check_run_id=binding.check_run_id,
            issued_at=now,
            expires_at=now + ttl,
            # every job's lease of it has its hash: see TokenRecord
            shared_credential=connector.kind == "passthrough" and not upstream.per_job,
        )
        lease = None if connector.kind == "minted" else connector.upstream_revocable
        issued = ExchangedToken(token, token_type, ttl, scopes, token_id, now + ttl, lease)
        return issued, record, upstream

    def _refuse_spent(self, verified: VerifiedClaims, job: JobBinding, now: int) -> None:
        """Refuse, before an upstream token is minted for it, an ID token already used or
        of an ended job. The commit (step 7) is what decides; asking first keeps such a
        token from getting an upstream token of its own (a GitHub installation token, a
        client-credentials grant) only to revoke it again."""
        if self._store.jti_claimed(verified.iss, verified.jti, now):
            raise IssueRefused("replayed")
        ended = (job.repository_id, job.run_id, job.run_attempt, job.check_run_id)
        if self._store.job_ended(*ended):
            raise IssueRefused("job_completed")

    def _lease(self, connector: Connector) -> str:
        try:  # CredentialUnusable tells the job to ask the operators; the log has the rest
            return self._credentials.get(connector).decode("utf-8")
        except UnicodeDecodeError:
            raise CredentialUnusable(
                "credential_unreadable", connector.name, "the credential is not UTF-8 text"
            ) from None
