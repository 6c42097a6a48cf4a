"""Upstream access tokens of OAuth connectors, refreshed once for every worker and broker
(docs/connectors.md, "Refresh: once, for everyone"). :meth:`UpstreamGrants.access`:

1. The process's cached token while it is *fresh*: more than the refresh margin
   (``refresh_margin_seconds``, at most half its lifetime) from expiry, and newer than
   the generation the caller says failed upstream (``newer_than``, after a 401).
2. Otherwise one thread per connector goes on (single flight within the process); the
   others take the cached token while it is *servable* (``grant_access.py``: more
   than ``NEAR_EXPIRY_SECONDS`` from expiry), else wait for that thread.
3. It reads the grant row: another worker or broker may have refreshed it. No row: an
   ``oauth2-refresh`` connector was never connected (``not_connected``); an
   ``oauth2-client-credentials`` one gets an empty row. ``needs_reauthorization``:
   refused.
4. Before the row's ``retry_at`` (a failed refresh's cool-down) nothing is tried: the
   old token while it has not expired, else ``provider_unavailable``.
5. It takes the row's lease (``store/grant_queries.py``: single flight across
   processes, refused during a cool-down). Lost: the row's token while servable, else
   it reads the row every ``poll_seconds`` until the holder commits, up to the deadline.
6. It calls the provider (``refresh_request.py``: bounded tries, each within its share
   of the deadline, which is shorter than the lease, so no two refreshes overlap).
7. Success: the rotated refresh token and the new access token are sealed and
   committed with the audit record in one transaction, before either is used.
   ``invalid_grant``: the grant becomes ``needs_reauthorization`` (audited, logged).
   Any other failure, or anything the refresher raises: the lease is given back with
   a ``retry_at`` (an outage's first failure and the refresh that ends it logged).

Every failure is a :class:`GrantUnavailable` whose text names the connector, never a
token. This module blocks (store and provider): call it from a worker thread, or
through ``http/grant_waits.py``.

Public API: :class:`UpstreamGrants`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable

from jobtoken.broker.audit.chain import AuditEntry, AuditLog
from jobtoken.broker.connectors.credentials import ConnectorCredentials
from jobtoken.broker.connectors.model import Connector, OAuthSettings
from jobtoken.broker.ops.logs import log_event
from jobtoken.broker.ops.metrics import Metrics
from jobtoken.broker.secrets.envelope import Envelope, EnvelopeError
from jobtoken.broker.store import (
    GRANT_NEEDS_REAUTHORIZATION,
    GRANT_READY,
    GrantRow,
    SqlStore,
    StoreError,
    sealed_record_id,
)
from jobtoken.broker.upstream.grant_access import (
    GrantUnavailable,
    UpstreamAccess,
    not_connected,
    reconnect_hint,
)
from jobtoken.broker.upstream.oauth_client import (
    AuthorizationServerClient,
    AuthorizationServerError,
    AuthorizationServerTokens,
)
from jobtoken.broker.upstream.refresh_request import RefreshRequest, try_seconds
from jobtoken.wire.strict_json import loads_strict

__all__ = ["UpstreamGrants"]

_SYSTEM_RANDOM = random.SystemRandom()


class UpstreamGrants:
    """The broker's access tokens for its OAuth connectors (module docstring)."""

    def __init__(
        self,
        *,
        store: SqlStore,
        envelope: Envelope,
        audit: AuditLog,
        metrics: Metrics,
        provider: AuthorizationServerClient,
        deadline_seconds: float = 15.0,
        poll_seconds: float = 0.025,
        cooldown_seconds: float = 5.0,
        attempts: int = 3,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        credentials: ConnectorCredentials | None = None,
    ) -> None:
        self._store, self._envelope, self._audit, self._metrics = store, envelope, audit, metrics
        self._provider = provider
        self._request = RefreshRequest(
            provider,
            credentials or ConnectorCredentials(store, envelope, audit),
            attempts=attempts,
            try_seconds=try_seconds(deadline_seconds, attempts),
            sleep=sleep,
        )
        self._deadline, self._poll, self._cooldown = (
            deadline_seconds,
            poll_seconds,
            cooldown_seconds,
        )
        self._clock, self._sleep = clock, sleep
        #: the lease outlives every call its holder makes, so two refreshes never overlap
        self._lease_ms = int((deadline_seconds + 5.0) * 1000)
        self._cache: dict[str, UpstreamAccess] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    # -- public ---------------------------------------------------------------------------
    def close(self) -> None:
        self._provider.close()

    def access(self, connector: Connector, *, newer_than: int = 0) -> UpstreamAccess:
        """A fresh access token of ``connector``, newer than generation ``newer_than``."""
        oauth = _oauth(connector)
        cached = self._cache.get(connector.name)
        if cached is not None and self._wanted(cached, oauth, newer_than):
            return cached
        lock = self._lock(connector.name)
        if not lock.acquire(blocking=False):  # another thread refreshes it now
            if cached is not None and self._servable(cached, oauth, newer_than):
                return cached
            if not lock.acquire(timeout=self._deadline):
                raise self._unavailable(connector.name, "the refresh did not finish in time")
        try:
            return self._access_locked(connector, oauth, newer_than)
        finally:
            lock.release()

    @property
    def deadline_seconds(self) -> float:
        return self._deadline

    def cached(
        self, connector: Connector, *, newer_than: int = 0, refreshing: bool = False
    ) -> UpstreamAccess | None:
        """Without blocking: the cached token :meth:`access` would return at once, or,
        while a refresh is in flight (``refreshing``, or this process's refresher runs),
        a servable one; None: call :meth:`access`."""
        oauth, cached = _oauth(connector), self._cache.get(connector.name)
        if cached is None or self._wanted(cached, oauth, newer_than):
            return cached
        refreshing = refreshing or self._lock(connector.name).locked()
        return cached if refreshing and self._servable(cached, oauth, newer_than) else None

    def require_ready(self, connector: Connector) -> None:
        """Refuse (``GrantUnavailable``) when the connector was never connected or needs
        re-authorization; an exchange for a proxied connector asks this, not for a token."""
        row = self._store.grant(connector.name)
        if row is None and connector.credential == "oauth2-refresh":
            raise not_connected(connector.name)
        if row is not None and row.state == GRANT_NEEDS_REAUTHORIZATION:
            raise GrantUnavailable("needs_reauthorization", reconnect_hint(connector.name))

    def connect(self, connector: Connector, tokens: AuthorizationServerTokens, how: str) -> int:
        """Store a newly authorized grant (``jobtoken broker connect``); its generation."""
        payload = {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "base_url": tokens.base_url,
        }
        sealed = self._seal(connector.name, payload)
        entry = AuditEntry(decision="connected", reason=how, connector=connector.name)
        now = int(self._clock())
        generation = self._store.put_grant(
            connector.name, sealed, tokens.expires_at, now, self._audit.builder(entry)
        )
        self._cache.pop(connector.name, None)
        return generation

    # -- the locked part ----------------------------------------------------------------
    def _access_locked(
        self, connector: Connector, oauth: OAuthSettings, newer_than: int
    ) -> UpstreamAccess:
        name = connector.name
        give_up = time.monotonic() + self._deadline
        while True:
            cached = self._cache.get(name)
            if cached is not None and self._wanted(cached, oauth, newer_than):
                return cached  # another thread of this process refreshed it meanwhile
            row = self._store.grant(name)
            if row is None:
                if connector.credential == "oauth2-refresh":
                    raise not_connected(name)
                self._store.ensure_grant(name, self._seal(name, {}), int(self._clock()))
                continue
            if row.state == GRANT_NEEDS_REAUTHORIZATION:
                self._cache.pop(name, None)  # dead: nothing of it is served any more
                raise GrantUnavailable("needs_reauthorization", reconnect_hint(name))
            payload = self._open(name, row)
            current = _access_of(row, payload)
            self._cache[name] = current  # the newest there is, fresh or not
            if self._wanted(current, oauth, newer_than):
                return current
            now_ms = int(self._clock() * 1000)
            if row.retry_at_ms > now_ms:
                return self._after_failure(name, current, newer_than, row.retry_at_ms - now_ms)
            owner = secrets.token_hex(12)
            if self._store.take_lease(name, owner, row.generation, now_ms, now_ms + self._lease_ms):
                try:
                    return self._refresh(connector, oauth, row, payload, owner, give_up)
                except BaseException:
                    self._abandon(name, owner)  # a no-op once committed or released
                    raise
            if self._servable(current, oauth, newer_than):
                return current  # another broker refreshes it; this one is still good
            if time.monotonic() >= give_up:
                raise self._unavailable(name, "another broker's refresh did not finish in time")
            self._sleep(self._poll)

    def _refresh(
        self,
        connector: Connector,
        oauth: OAuthSettings,
        row: GrantRow,
        payload: dict[str, str],
        owner: str,
        give_up: float,
    ) -> UpstreamAccess:
        name, grant_type = connector.name, _grant_type(connector)
        current = _access_of(row, payload)
        try:
            tokens = self._request.tokens(connector, oauth, payload, give_up)
        except AuthorizationServerError as exc:
            return self._failed(connector, owner, current, exc, row.retry_at_ms > 0)
        except GrantUnavailable:
            self._store.release_lease(name, owner, state=GRANT_READY, retry_at_ms=0, audit=None)
            raise
        except StoreError:
            raise
        except Exception as exc:  # anything the answer raised is a failed refresh
            failure = f"the provider's answer cannot be read ({type(exc).__name__})"
            unreadable = AuthorizationServerError("invalid_response", failure)
            return self._failed(connector, owner, current, unreadable, row.retry_at_ms > 0)
        new_payload = {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token or payload.get("refresh_token", ""),
            "base_url": tokens.base_url or payload.get("base_url", ""),
        }
        now = int(self._clock())
        entry = AuditEntry(
            decision="refreshed",
            reason=grant_type,
            connector=name,
            ttl=max(0, tokens.expires_at - now),
            token_sha256=hashlib.sha256(tokens.access_token.encode()).hexdigest(),
        )
        sealed = self._seal(name, new_payload)
        generation = self._store.commit_refresh(
            name, owner, sealed, tokens.expires_at, now, self._audit.builder(entry)
        )
        if generation is None:  # cannot happen while the lease outlives the deadline
            raise self._unavailable(name, "the refresh lease was lost")
        self._metrics.count("jobtoken_upstream_refreshes_total", connector=name, outcome="ok")
        if row.retry_at_ms:  # the refresh before this one failed
            log_event("connector's provider refreshes its grant again", connector=name)
        access = UpstreamAccess(
            tokens.access_token, tokens.expires_at, now, generation, new_payload["base_url"]
        )
        self._cache[name] = access
        return access

    def _failed(
        self,
        connector: Connector,
        owner: str,
        current: UpstreamAccess,
        exc: AuthorizationServerError,
        failing_before: bool,
    ) -> UpstreamAccess:
        """Give the lease back after ``exc``, audited; logged when the grant dies or
        its provider starts failing (``failing_before``: the last refresh failed too)."""
        name = connector.name
        dead = exc.kind == "invalid_grant"
        reason = {"invalid_grant": "invalid_grant", "unavailable": "provider_unavailable"}.get(
            exc.kind, "provider_refused"
        )
        entry = AuditEntry(decision="refresh_failed", reason=reason, connector=name)
        cooldown = max(self._cooldown * _SYSTEM_RANDOM.uniform(1.0, 1.5), exc.retry_after)
        retry_at_ms = 0 if dead else int((self._clock() + cooldown) * 1000)
        state = GRANT_NEEDS_REAUTHORIZATION if dead else GRANT_READY
        self._store.release_lease(
            name, owner, state=state, retry_at_ms=retry_at_ms, audit=self._audit.builder(entry)
        )
        self._metrics.count("jobtoken_upstream_refreshes_total", connector=name, outcome=reason)
        self._cache.pop(name, None)
        if dead or not failing_before:
            log_event(
                "connector's grant needs re-authorization at its provider (broker connect)"
                if dead
                else "connector's provider failed a refresh; retried after a cool-down",
                logging.WARNING,
                connector=name,
                reason=reason,
                cause=exc.text,
            )
        if dead:
            raise GrantUnavailable("needs_reauthorization", reconnect_hint(name))
        if exc.kind == "refused":
            text = f"connector {name}'s provider refused the broker ({exc.text}); check its client"
            raise GrantUnavailable("provider_refused", text, retry_after=int(cooldown) + 1)
        if exc.kind == "invalid_response" and not self._unexpired(current, 0):
            text = f"connector {name}'s provider gave an unusable answer ({exc.text})"
            raise GrantUnavailable("provider_refused", text, retry_after=int(cooldown) + 1)
        return self._after_failure(name, current, 0, int(cooldown * 1000))

    def _abandon(self, name: str, owner: str) -> None:
        """Give back a lease its holder is leaving without a result (an error nothing
        else caught), with the cool-down, as a failed refresh does; if the store cannot
        take even that, the lease runs out by itself."""
        retry_at_ms = int((self._clock() + self._cooldown) * 1000)
        with contextlib.suppress(StoreError):
            self._store.release_lease(
                name, owner, state=GRANT_READY, retry_at_ms=retry_at_ms, audit=None
            )

    def _after_failure(
        self, name: str, current: UpstreamAccess, newer_than: int, wait_ms: int
    ) -> UpstreamAccess:
        """While refreshes are paused: the old token if it has not expired, else 503."""
        if self._unexpired(current, newer_than):
            return current
        raise self._unavailable(
            name, "its provider is not answering", retry_after=max(1, -(-wait_ms // 1000))
        )

    # -- small parts ----------------------------------------------------------------------
    def _unexpired(self, access: UpstreamAccess, newer_than: int) -> bool:
        usable = bool(access.access_token) and access.generation > newer_than
        return usable and self._clock() < access.expires_at

    def _wanted(self, access: UpstreamAccess, oauth: OAuthSettings, newer_than: int) -> bool:
        fresh = access.fresh(oauth.refresh_margin_seconds, self._clock())
        return fresh and access.generation > newer_than

    def _servable(self, access: UpstreamAccess, oauth: OAuthSettings, newer_than: int) -> bool:
        servable = access.servable(oauth.refresh_margin_seconds, self._clock())
        return servable and access.generation > newer_than

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def _seal(self, name: str, payload: dict[str, str]) -> bytes:
        return self._envelope.encrypt(
            sealed_record_id("upstream_grants", name), json.dumps(payload).encode()
        )

    def _open(self, name: str, row: GrantRow) -> dict[str, str]:
        try:
            value = loads_strict(
                self._envelope.decrypt(sealed_record_id("upstream_grants", name), row.sealed)
            )
        except (EnvelopeError, ValueError):
            value = None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise GrantUnavailable(
                "credential_unreadable", f"connector {name}'s grant cannot be opened"
            )
        return value

    def _unavailable(self, name: str, why: str, *, retry_after: int = 2) -> GrantUnavailable:
        return GrantUnavailable(
            "provider_unavailable",
            f"connector {name} is unavailable: {why}; try again later",
            retry_after=retry_after,
        )


def _oauth(connector: Connector) -> OAuthSettings:
    if connector.oauth is None:
        raise ValueError(f"connector {connector.name} is not an OAuth connector")
    return connector.oauth


def _grant_type(connector: Connector) -> str:
    return "refresh_token" if connector.credential == "oauth2-refresh" else "client_credentials"


def _access_of(row: GrantRow, payload: dict[str, str]) -> UpstreamAccess:
    return UpstreamAccess(
        payload.get("access_token", ""),
        row.access_expires_at,
        row.refreshed_at,
        row.generation,
        payload.get("base_url", ""),
    )
