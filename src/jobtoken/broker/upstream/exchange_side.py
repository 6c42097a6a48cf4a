"""The upstream side of one exchange: what an OAuth or GitHub App connector needs before
the broker may issue, and the upstream token a job gets with its broker token.

- ``oauth2-*`` (a minted token, or an ``oauth2-refresh`` passthrough lease): the
  grant must be connected and alive (``invalid_target``, reason ``not_connected`` /
  ``needs_reauthorization``, naming the command that fixes it). An ``oauth2-refresh``
  passthrough lease is the grant's current access token, shared with every job of the
  connector: its TTL is capped at that token's remaining life, and it cannot be
  revoked upstream at job end without cutting off the other jobs (docs/connectors.md);
  503 ``temporarily_unavailable`` while the provider cannot refresh it.
- ``github-app``: a new installation token for this job's repository and scopes
  (``upstream/job_tokens.py``), its TTL capped at the token's; kept sealed with the
  broker token's row and revoked at GitHub with it. Minted, the job uses it only
  through the proxy; passthrough, the job gets it.
- ``oauth2-client-credentials`` with ``passthrough``: a client-credentials grant of
  this job's own, revoked at the provider's RFC 7009 endpoint with the job's lease
  (when the connector has a ``revoke_url``).

Public API: :class:`ExchangeUpstream`, :class:`UpstreamPart`.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobtoken.broker.connectors.model import Connector
from jobtoken.broker.errors import BrokerError
from jobtoken.broker.upstream.grants import UpstreamGrants
from jobtoken.broker.upstream.job_tokens import JobUpstreamTokens

__all__ = ["ExchangeUpstream", "UpstreamPart"]


@dataclass(frozen=True, repr=False)
class UpstreamPart:
    #: the upstream token the job gets (passthrough) or the proxy injects (per job); ""
    token: str = ""
    ttl: int = 0
    #: the token is this job's own: stored sealed with its row, revoked with it
    per_job: bool = False


class ExchangeUpstream:
    def __init__(self, grants: UpstreamGrants | None, app_tokens: JobUpstreamTokens | None):
        self._grants, self._app_tokens = grants, app_tokens

    def prepare(
        self, connector: Connector, repository: str, scopes: tuple[str, ...], ttl: int, now: int
    ) -> UpstreamPart:
        """Check (and, where the job gets one, obtain) the upstream access. Raises
        :class:`AppTokenUnavailable` or :class:`GrantUnavailable`, each a refusal as it
        stands (``jobtoken.broker.errors``)."""
        if connector.per_job_upstream and self._app_tokens is not None:
            token, expires_at = self._app_tokens.issue(connector, repository, scopes)
            return UpstreamPart(token, min(ttl, expires_at - now), True)
        if connector.oauth is not None and self._grants is not None:
            return self._oauth(self._grants, connector, ttl, now)
        if connector.oauth is not None or connector.per_job_upstream:
            raise BrokerError("invalid_target", "this broker cannot serve that connector")
        return UpstreamPart(ttl=ttl)

    def encrypt(self, connector: Connector, token_id: str, part: UpstreamPart) -> bytes | None:
        """The per-job token, sealed, to keep with the job's row: the proxy injects it
        (GitHub App) and the revocation revokes it upstream. A token the upstream
        cannot revoke (no ``revoke_url``) and the proxy never uses is not kept."""
        if not part.per_job or self._app_tokens is None or not connector.upstream_revocable:
            return None
        return self._app_tokens.encrypt(token_id, part.token)

    def discard(self, connector: Connector, part: UpstreamPart) -> None:
        """The exchange failed after ``prepare``: revoke a per-job token it minted."""
        if part.per_job and self._app_tokens is not None:
            self._app_tokens.discard(connector, part.token)

    @staticmethod
    def _oauth(grants: UpstreamGrants, connector: Connector, ttl: int, now: int) -> UpstreamPart:
        if connector.kind == "minted":
            grants.require_ready(connector)
            return UpstreamPart(ttl=ttl)
        access = grants.access(connector)
        return UpstreamPart(access.access_token, min(ttl, access.expires_at - now))
