"""The credential the proxy injects into a connector call, by the connector's ``credential``:

- ``static``: the connector's key (``connectors/credentials.py``: stored by ``connector
  set``, or its sealed credential file);
- ``oauth2-refresh`` / ``oauth2-client-credentials``: the grant's current access
  token (``upstream/grants.py``, refreshed once for every worker and
  broker), and with it its *generation*: after an upstream 401 the proxy asks once
  for a token newer than the one that failed, then retries once;
- ``github-app``: the installation token minted for this job at its exchange
  (``upstream/job_tokens.py``), never another job's.

Every failure is a :class:`~jobtoken.broker.errors.BrokerError` carrying the proxy's
answer: 503 ``temporarily_unavailable`` with ``Retry-After`` while the provider or the
credential may come back, 502 ``bad_gateway`` for a grant only its operators can mend
(which the token endpoint answers ``invalid_target``); its text names the connector,
never a credential. Waiting for a refresh holds no shared thread (``grant_waits.py``).

Public API: :func:`proxy_credential`, :class:`UpstreamCredential`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from jobtoken.broker.assembly import Broker
from jobtoken.broker.connectors.credentials import CredentialUnusable
from jobtoken.broker.connectors.model import OAUTH_CREDENTIALS, Connector
from jobtoken.broker.errors import BrokerError
from jobtoken.broker.http.blocking import blocking
from jobtoken.broker.http.grant_waits import GrantWaits
from jobtoken.broker.secrets.envelope import EnvelopeError
from jobtoken.broker.store import sealed_record_id
from jobtoken.broker.upstream.grant_access import GrantUnavailable

__all__ = ["UpstreamCredential", "bad_gateway", "proxy_credential", "unavailable"]


@dataclass(frozen=True, repr=False)
class UpstreamCredential:
    value: str
    #: the grant generation the value belongs to; 0: not refreshable (static, per job)
    generation: int = 0
    #: the API base URL named by the grant (Salesforce's instance_url), or ""
    base_url: str = ""


def unavailable(text: str) -> BrokerError:
    """The connector's credential cannot be had now: a 503 the caller may retry."""
    return BrokerError("temporarily_unavailable", text, status=503, reason="credential_unavailable")


def bad_gateway(text: str) -> BrokerError:
    return BrokerError("bad_gateway", text, status=502, reason="credential_unavailable")


async def proxy_credential(
    broker: Broker, waits: GrantWaits, connector: Connector, token_id: str, *, newer_than: int = 0
) -> UpstreamCredential:
    """The credential for one proxied call; an OAuth grant's access token newer than
    generation ``newer_than``, waited for on the event loop (``grant_waits.py``), any
    other credential read on the blocking pool."""
    if connector.credential not in OAUTH_CREDENTIALS:
        return await blocking(_stored_credential, broker, connector, token_id)
    try:
        access = await waits.access(connector, newer_than=newer_than)
    except GrantUnavailable as exc:
        if exc.status < 500:  # the connector's state, not this call's: a bad gateway
            raise bad_gateway(exc.description) from None
        raise
    return UpstreamCredential(access.access_token, access.generation, access.base_url)


def _stored_credential(broker: Broker, connector: Connector, token_id: str) -> UpstreamCredential:
    if connector.per_job_upstream:
        return _job_token(broker, connector, token_id)
    try:
        value = broker.credentials.get(connector).decode("utf-8")
    except (CredentialUnusable, UnicodeDecodeError):  # the details are in the broker's log
        raise unavailable("connector credential unavailable") from None
    return UpstreamCredential(value)


def _job_token(broker: Broker, connector: Connector, token_id: str) -> UpstreamCredential:
    found = broker.store.job_upstream_token(token_id)
    unusable = bad_gateway(f"connector {connector.name} has no upstream token for this job")
    if found is None:
        raise unusable
    sealed, expires_at, revoked_upstream_at = found
    if revoked_upstream_at is not None or expires_at <= time.time():
        raise unusable
    try:
        value = broker.envelope.decrypt(
            sealed_record_id("job_upstream_tokens", token_id), sealed
        ).decode("utf-8")
    except (EnvelopeError, UnicodeDecodeError):
        raise unusable from None
    return UpstreamCredential(value)
