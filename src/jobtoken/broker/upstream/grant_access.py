"""What a connector's OAuth grant gives its callers: an upstream access token
(:class:`UpstreamAccess`), or why there is none (:class:`GrantUnavailable`, with the
command that mends it). ``grants.py`` keeps the grant fresh; this is its vocabulary.

Public API: :class:`UpstreamAccess`, :class:`GrantUnavailable`, :func:`reconnect_hint`,
:func:`not_connected`, :data:`NEAR_EXPIRY_SECONDS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobtoken.broker.errors import BrokerError

__all__ = [
    "NEAR_EXPIRY_SECONDS",
    "GrantUnavailable",
    "UpstreamAccess",
    "not_connected",
    "reconnect_hint",
]

#: a token this close to expiry is not handed out while a refresh is in flight: the
#: caller waits for the new one
NEAR_EXPIRY_SECONDS = 5


class GrantUnavailable(BrokerError):
    """No upstream access token can be had; ``reason`` is the audit/metrics code.

    A provider that is not answering (``provider_unavailable``) is a wait: 503
    ``temporarily_unavailable`` with ``Retry-After``. Any other reason is the connector's
    state, which only its operators can change (``broker connect``, its client secret):
    ``invalid_target`` at the token endpoint; the proxy answers it as a bad gateway."""

    def __init__(self, reason: str, text: str, *, retry_after: int = 0) -> None:
        if reason == "provider_unavailable":
            wait = retry_after or 2
            super().__init__(
                "temporarily_unavailable", text, status=503, reason=reason, retry_after=wait
            )
        else:
            super().__init__("invalid_target", text, reason=reason)
        self.text = text


@dataclass(frozen=True, repr=False)
class UpstreamAccess:
    """A connector's upstream access token. ``repr`` shows no token."""

    access_token: str
    expires_at: int
    obtained_at: int
    generation: int
    #: the API base URL the provider named for this grant (Salesforce), or ""
    base_url: str = ""

    def __repr__(self) -> str:
        return f"UpstreamAccess(generation={self.generation}, expires_at={self.expires_at})"

    def fresh(self, margin: int, now: float) -> bool:
        """Not yet due for refresh: more than the refresh margin (at most half the
        token's lifetime) left."""
        return bool(self.access_token) and now < self.expires_at - self._margin(margin)

    def servable(self, margin: int, now: float) -> bool:
        """Good to hand out while another caller refreshes it: more than
        ``NEAR_EXPIRY_SECONDS`` left, or half the refresh margin if that is less (at
        least one second)."""
        near = max(1, min(NEAR_EXPIRY_SECONDS, self._margin(margin) // 2))
        return bool(self.access_token) and now < self.expires_at - near

    def _margin(self, margin: int) -> int:
        return min(margin, (self.expires_at - self.obtained_at) // 2)


def reconnect_hint(connector: str) -> str:
    return (
        f"connector {connector} needs re-authorization at its provider; an operator runs "
        f"`jobtoken broker connect {connector} --config FILE`"
    )


def not_connected(name: str) -> GrantUnavailable:
    return GrantUnavailable(
        "not_connected",
        f"connector {name} is not connected to its provider yet; an operator runs "
        f"`jobtoken broker connect {name} --config FILE`",
    )
