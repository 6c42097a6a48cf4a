"""The token request of one refresh of a connector's OAuth grant: the connector's client
secret, then bounded tries at its provider's token endpoint (docs/connectors.md,
"Refresh: once, for everyone"). ``grants.py`` holds the lease while this runs.

A try that the provider does not answer (``unavailable``: a 5xx, a 429, a timeout) is
retried with jittered back-off, at most ``attempts`` tries in all and all within the
refresh's deadline; any other failure is final at once. Each try waits at most
``try_seconds`` (the deadline shared among the tries, :func:`try_seconds`), so one
request the provider never answers leaves time for the next.

Public API: :class:`RefreshRequest`, :func:`try_seconds`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from jobtoken.broker.connectors.credentials import ConnectorCredentials, CredentialUnusable
from jobtoken.broker.connectors.model import Connector, OAuthSettings
from jobtoken.broker.upstream.grant_access import GrantUnavailable, not_connected
from jobtoken.broker.upstream.oauth_client import (
    AuthorizationServerClient,
    AuthorizationServerError,
    AuthorizationServerTokens,
)

__all__ = ["RefreshRequest", "try_seconds"]

_SYSTEM_RANDOM = random.SystemRandom()
#: the least one try waits for an answer, however short the deadline
MIN_TRY_SECONDS = 1.0


def try_seconds(deadline_seconds: float, attempts: int) -> float:
    """How long one of ``attempts`` tries waits within a ``deadline_seconds`` refresh:
    an equal share of it, at least ``MIN_TRY_SECONDS`` (15 s, 3 tries: 5 s each)."""
    return max(MIN_TRY_SECONDS, deadline_seconds / max(1, attempts))


class RefreshRequest:
    """One connector's token request, retried (module docstring). Thread-safe."""

    def __init__(
        self,
        provider: AuthorizationServerClient,
        credentials: ConnectorCredentials,
        *,
        attempts: int,
        try_seconds: float,
        sleep: Callable[[float], None],
    ) -> None:
        self._provider, self._credentials = provider, credentials
        self._attempts, self._try_seconds, self._sleep = attempts, try_seconds, sleep

    def tokens(
        self, connector: Connector, oauth: OAuthSettings, payload: dict[str, str], give_up: float
    ) -> AuthorizationServerTokens:
        """New tokens for ``connector`` by ``give_up`` (``time.monotonic``); the last
        :class:`AuthorizationServerError` once tries or time run out, or
        :class:`GrantUnavailable` when there is nothing to ask with."""
        secret = self._client_secret(connector)
        for attempt in range(self._attempts):
            remaining = min(self._try_seconds, give_up - time.monotonic())
            if remaining <= 0:
                raise AuthorizationServerError("unavailable", "the refresh ran out of time")
            try:
                if connector.credential == "oauth2-refresh":
                    refresh_token = payload.get("refresh_token", "")
                    if not refresh_token:
                        raise not_connected(connector.name)
                    return self._provider.refresh(oauth, secret, refresh_token, timeout=remaining)
                return self._provider.client_credentials(oauth, secret, timeout=remaining)
            except AuthorizationServerError as exc:
                pause = min(2.0, 0.2 * 2**attempt) * _SYSTEM_RANDOM.uniform(0.5, 1.5)
                last_try = attempt == self._attempts - 1
                if exc.kind != "unavailable" or last_try or time.monotonic() + pause >= give_up:
                    raise
                self._sleep(pause)
        raise AuthorizationServerError("unavailable", "the provider was not tried")  # attempts == 0

    def _client_secret(self, connector: Connector) -> str:
        name = connector.name
        try:
            return self._credentials.get(connector).decode("utf-8")
        except CredentialUnusable as exc:
            missing = exc.reason == "credential_missing"
        except UnicodeDecodeError:
            missing = False
        if missing:
            raise GrantUnavailable(
                "credential_missing",
                f"connector {name} has no client secret; an operator runs "
                f"`jobtoken broker connector set {name} --config FILE --credential-file F` "
                "or names a credential_sealed_file",
            )
        raise GrantUnavailable(  # the details are in the broker's log
            "credential_unreadable", f"connector {name}'s client secret cannot be opened"
        )
