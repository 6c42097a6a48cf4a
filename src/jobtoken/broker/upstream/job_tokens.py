"""Upstream tokens of one job, minted at its exchange and revoked upstream when the
job's broker tokens are revoked: GitHub App installation tokens, and the access tokens
of a client-credentials connector's passthrough leases (revoked at its RFC 7009
``revoke_url``).

A ``github-app`` connector holds the app's private key (sealed, ``connector set``).
:meth:`JobUpstreamTokens.mint` makes, for one exchange, an installation token limited
to the job's repository and to the permissions its granted scopes name
(``contents:read`` → ``{"contents": "read"}``), as octo-sts and
create-github-app-token do, but bound to the job: the exchange stores it sealed with
the broker token's row (``upstream/job_tokens.py``), the proxy injects it for that token
only, and :meth:`revoke_upstream` calls ``DELETE /installation/token`` for each
revoked broker token that had one — after the revocation committed, whichever path
revoked it (the revoke step, the webhook at job end, an admin). A revocation GitHub
did not confirm is retried by :meth:`sweep` (the expiry purge's loop) until the token
expires. Each confirmed one is audited (``revoked_upstream``).

A client-credentials passthrough lease is the same story with an OAuth provider: a
``client_credentials`` grant for this job alone (not the connector's shared access
token), revoked with RFC 7009 at job end; without a ``revoke_url`` only its lifetime
bounds it, and the exchange's answer says so (``upstream_revoked_at_job_end``).

Public API: :class:`JobUpstreamTokens`, :class:`AppTokenUnavailable`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from jobtoken.broker.audit.chain import AuditEntry, AuditLog
from jobtoken.broker.connectors.credentials import ConnectorCredentials, CredentialUnusable
from jobtoken.broker.connectors.model import Connector
from jobtoken.broker.errors import BrokerError
from jobtoken.broker.ops.logs import log_event
from jobtoken.broker.secrets.envelope import Envelope, EnvelopeError
from jobtoken.broker.store import SqlStore, TokenRecord, sealed_record_id
from jobtoken.broker.upstream.oauth_client import (
    AuthorizationServerClient,
    AuthorizationServerError,
)

if TYPE_CHECKING:
    from jobtoken.broker.upstream.github_app import GitHubApp, InstallationToken

__all__ = ["AppTokenUnavailable", "JobUpstreamTokens"]

#: most upstream revocations one sweep retries
SWEEP_BATCH = 100


class AppTokenUnavailable(BrokerError):
    """No upstream token for this exchange; ``reason`` is the audit code. ``status`` 503
    is a wait (``temporarily_unavailable``, ``Retry-After: 2``); otherwise the job asked
    for a scope the app cannot grant (``invalid_scope``) or the connector cannot serve it
    now (``invalid_target``)."""

    def __init__(self, reason: str, text: str, *, status: int = 400) -> None:
        if status == 503:
            super().__init__(
                "temporarily_unavailable", text, status=503, reason=reason, retry_after=2
            )
        else:
            error = "invalid_scope" if reason == "unknown_scope" else "invalid_target"
            super().__init__(error, text, reason=reason)
        self.text = text


class JobUpstreamTokens:
    def __init__(
        self,
        store: SqlStore,
        envelope: Envelope,
        audit: AuditLog,
        connectors: dict[str, Connector],
        provider: AuthorizationServerClient | None = None,
        clock: Callable[[], float] = time.time,
        credentials: ConnectorCredentials | None = None,
    ) -> None:
        self._store, self._envelope, self._audit, self._clock = store, envelope, audit, clock
        self._credentials = credentials or ConnectorCredentials(store, envelope, audit)
        self._connectors, self._provider = connectors, provider or AuthorizationServerClient()
        self._apps: dict[str, tuple[str, GitHubApp]] = {}
        self._guard = threading.Lock()

    def issue(
        self, connector: Connector, repository: str, scopes: tuple[str, ...]
    ) -> tuple[str, int]:
        """(token, expires_at) of a new upstream token for this job alone."""
        if connector.oauth is not None:
            return self._client_credentials(connector)
        installation = self._installation_token(connector, repository, scopes)
        return installation.token, installation.expires_at

    def _client_credentials(self, connector: Connector) -> tuple[str, int]:
        assert connector.oauth is not None
        secret = self._client_secret(connector)
        try:
            tokens = self._provider.client_credentials(connector.oauth, secret)
        except AuthorizationServerError as exc:
            kind, text = exc.kind, exc.text
        except Exception as exc:  # whatever the call raised: no token, and no 500
            kind, text = "invalid_response", f"its answer cannot be read ({type(exc).__name__})"
        else:
            return tokens.access_token, tokens.expires_at
        raise AppTokenUnavailable(
            "provider_unavailable" if kind == "unavailable" else "provider_refused",
            f"connector {connector.name}: the provider issued no token ({text})",
            status=503 if kind == "unavailable" else 502,
        )

    def _installation_token(
        self, connector: Connector, repository: str, scopes: tuple[str, ...]
    ) -> InstallationToken:
        """An installation token for ``repository`` (owner/name) with ``scopes``."""
        from jobtoken.broker.upstream.github_app import GitHubAppError, permissions_for_scopes

        try:
            permissions = permissions_for_scopes(scopes)
        except ValueError as exc:
            raise AppTokenUnavailable("unknown_scope", str(exc)) from None
        owner, _, name = repository.partition("/")
        if not owner or not name:
            raise AppTokenUnavailable("no_repository", "the ID token names no repository")
        app = self._app(connector)
        try:
            installation = app.installation_id(repository)
            return app.create_installation_token(installation, (name,), permissions)
        except GitHubAppError as exc:
            status = 503 if exc.kind == "unreachable" else 502
            raise AppTokenUnavailable(
                "github_app_failed",
                f"connector {connector.name}: GitHub did not issue an installation token "
                f"({exc.text})",
                status=status,
            ) from None

    def encrypt(self, token_id: str, token: str) -> bytes:
        return self._envelope.encrypt(
            sealed_record_id("job_upstream_tokens", token_id), token.encode()
        )

    def discard(self, connector: Connector, token: str) -> None:
        """Revoke an upstream token the exchange minted but did not issue."""
        self._revoke_upstream(connector, token)

    def revoke_upstream(self, rows: Iterable[TokenRecord]) -> int:
        """Revoke at GitHub the upstream tokens of these (just revoked) broker tokens;
        how many GitHub confirmed. The others are left to :meth:`sweep`."""
        confirmed = 0
        for row in rows:
            connector = self._connectors.get(row.connector)
            if connector is None or not connector.per_job_upstream:
                continue
            found = self._store.job_upstream_token(row.token_id)
            if found is None or found[2] is not None:
                continue
            confirmed += self._revoke_row(connector, row.token_id, found[0])
        return confirmed

    def sweep(self) -> int:
        """Retry the upstream revocations not yet confirmed; how many now are."""
        confirmed = 0
        for token_id, name, sealed in self._store.unrevoked_upstream_tokens(
            int(self._clock()), SWEEP_BATCH
        ):
            connector = self._connectors.get(name)
            if connector is not None and connector.per_job_upstream:
                confirmed += self._revoke_row(connector, token_id, sealed)
        return confirmed

    # -- internals -----------------------------------------------------------------------
    def _revoke_row(self, connector: Connector, token_id: str, sealed: bytes) -> int:
        try:
            token = self._envelope.decrypt(
                sealed_record_id("job_upstream_tokens", token_id), sealed
            ).decode("utf-8")
        except (EnvelopeError, UnicodeDecodeError):
            return 0
        if not self._revoke_upstream(connector, token):
            return 0
        if self._store.mark_upstream_revoked(token_id, int(self._clock())):
            how = "rfc7009" if connector.oauth is not None else "installation_token_deleted"
            self._audit.record(
                AuditEntry(
                    decision="revoked_upstream",
                    reason=how,
                    connector=connector.name,
                    token_id=token_id,
                    token_sha256=hashlib.sha256(token.encode()).hexdigest(),
                )
            )
        return 1

    def _revoke_upstream(self, connector: Connector, token: str) -> bool:
        """Revoke one upstream token; False (logged) if the upstream did not confirm, or
        cannot revoke (a provider without ``revoke_url``: its lifetime bounds it)."""
        from jobtoken.broker.upstream.github_app import GitHubAppError

        if not connector.upstream_revocable:
            return False
        try:
            if connector.oauth is not None:
                secret = self._client_secret(connector)
                self._provider.revoke(connector.oauth, secret, token, "access_token")
            else:
                self._app(connector).revoke_installation_token(token)
        except (GitHubAppError, AuthorizationServerError, AppTokenUnavailable) as exc:
            log_event(
                "upstream revocation failed; retried later",
                connector=connector.name,
                cause=getattr(exc, "kind", getattr(exc, "reason", "")),
            )
            return False
        return True

    def _client_secret(self, connector: Connector) -> str:
        try:
            return self._credentials.get(connector).decode()
        except (CredentialUnusable, UnicodeDecodeError):
            raise AppTokenUnavailable(
                "credential_missing",
                f"connector {connector.name} has no usable client secret; an operator runs "
                f"`jobtoken broker connector set {connector.name} --config FILE "
                "--credential-file F` or names a credential_sealed_file",
                status=503,
            ) from None

    def _app(self, connector: Connector) -> GitHubApp:
        from jobtoken.broker.upstream.github_app import GitHubApp

        settings = connector.github_app
        assert settings is not None
        try:
            key = self._credentials.get(connector)
        except CredentialUnusable as exc:
            if exc.reason != "credential_missing":  # the details are in the broker's log
                raise AppTokenUnavailable(
                    exc.reason,
                    f"connector {connector.name}'s app private key cannot be used",
                    status=503,
                ) from None
            raise AppTokenUnavailable(
                "credential_missing",
                f"connector {connector.name} has no app private key; an operator runs "
                f"`jobtoken broker connector set {connector.name} --config FILE "
                "--credential-file app-key.pem` or names a credential_sealed_file",
            ) from None
        version = hashlib.sha256(key).hexdigest()
        with self._guard:
            cached = self._apps.get(connector.name)
            if cached is not None and cached[0] == version:
                return cached[1]
        try:
            app = GitHubApp(settings.app_id, key, api_url=settings.api_url)
        except ValueError:
            raise AppTokenUnavailable(
                "credential_unreadable",
                f"connector {connector.name}'s app private key cannot be used",
                status=503,
            ) from None
        with self._guard:
            self._apps[connector.name] = (version, app)
        return app
