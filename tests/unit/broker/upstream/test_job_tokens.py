"""A job's own upstream tokens (job_tokens.py): a client-credentials passthrough lease
whose provider answers what its reading cannot take is refused (``invalid_target``,
the connector cannot serve it now), never a 500."""

from __future__ import annotations

import pytest

from jobtoken.broker.audit.chain import AuditLog
from jobtoken.broker.connectors.model import Connector, OAuthSettings
from jobtoken.broker.secrets.envelope import Envelope, MasterKey
from jobtoken.broker.store import SqlStore
from jobtoken.broker.upstream.job_tokens import AppTokenUnavailable, JobUpstreamTokens
from jobtoken.broker.upstream.oauth_client import AuthorizationServerError

OAUTH = OAuthSettings(client_id="client-1", token_url="https://provider.test/token")
BATCH = Connector(
    name="batch",
    credential="oauth2-client-credentials",
    oauth=OAUTH,
    base_url="https://api.test",
    kind="passthrough",
    allow_passthrough=True,
)
ENVELOPE = Envelope(MasterKey.generate())


class FailingProvider:
    def __init__(self, failure: Exception) -> None:
        self.failure = failure

    def client_credentials(self, oauth: OAuthSettings, secret: str) -> None:
        assert (oauth, secret) == (OAUTH, "client-secret")
        raise self.failure


@pytest.mark.parametrize(
    ("failure", "status", "reason"),
    [
        (
            AuthorizationServerError("unavailable", "the provider answered 503"),
            503,
            "provider_unavailable",
        ),
        (AuthorizationServerError("invalid_response", "bad expires_in"), 400, "provider_refused"),
        (OverflowError("what reading the answer raised"), 400, "provider_refused"),
    ],
    ids=["unavailable", "invalid-response", "any-exception"],
)
def test_a_failed_client_credentials_grant_is_a_wait_or_a_refusal_never_a_500(
    store: SqlStore, failure: Exception, status: int, reason: str
) -> None:
    store.put_credential("batch", ENVELOPE.encrypt("connector:batch", b"client-secret"), 0)
    tokens = JobUpstreamTokens(
        store,
        ENVELOPE,
        AuditLog(store),
        {"batch": BATCH},
        provider=FailingProvider(failure),  # type: ignore[arg-type]
    )
    with pytest.raises(AppTokenUnavailable) as refused:
        tokens.issue(BATCH, "octo-org/octo-repo", ("contacts.read",))
    assert (refused.value.status, refused.value.reason) == (status, reason)
    assert "connector batch: the provider issued no token" in refused.value.text
    assert "client-secret" not in refused.value.text
