"""Single-flight refresh of OAuth grants, on both store backends, with a scripted
provider client in place of the network (the real provider, Authlib's server, is in
tests/integration/broker/test_oauth_refresh.py)."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jobtoken.broker.audit.chain import AuditLog
from jobtoken.broker.connectors.model import Connector, OAuthSettings
from jobtoken.broker.ops.metrics import Metrics
from jobtoken.broker.secrets.envelope import MasterKey, Sealer
from jobtoken.broker.store import SqlStore
from jobtoken.broker.upstream.grants import GrantUnavailable, UpstreamGrants
from jobtoken.broker.upstream.oauth_client import ProviderError, ProviderTokens
from support.stores import open_kind

OAUTH = OAuthSettings(
    client_id="client-1", token_url="https://provider.test/token", refresh_margin_seconds=60
)
REFRESHING = Connector(
    name="crm", credential="oauth2-refresh", oauth=OAUTH, base_url="https://api.test"
)
CLIENT_CREDENTIALS = Connector(
    name="batch", credential="oauth2-client-credentials", oauth=OAUTH, base_url="https://api.test"
)
SECRET = "client-secret-" + "s" * 20


@dataclass
class ScriptedProvider:
    """Answers token requests like a rotating provider; records every call."""

    lifetime: int = 3600
    delay: float = 0.0
    failures: list[ProviderError] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    refresh_token: str = "rt-0"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _answer(self, grant: str, presented: str) -> ProviderTokens:
        time.sleep(self.delay)
        with self.lock:
            self.calls.append((grant, presented))
            if self.failures:
                raise self.failures.pop(0)
            if grant == "refresh_token":
                if presented != self.refresh_token:
                    raise ProviderError("invalid_grant", "the provider answered invalid_grant")
                self.refresh_token = "rt-" + secrets.token_hex(8)
            access = "at-" + secrets.token_hex(8)
            return ProviderTokens(access, int(time.time()) + self.lifetime, self.refresh_token)

    def refresh(
        self, oauth: OAuthSettings, secret: str, refresh_token: str, *, timeout: float = 0
    ) -> ProviderTokens:
        assert (oauth, secret) == (OAUTH, SECRET)
        assert timeout > 0
        return self._answer("refresh_token", refresh_token)

    def client_credentials(
        self, oauth: OAuthSettings, secret: str, *, timeout: float = 0
    ) -> ProviderTokens:
        assert (oauth, secret) == (OAUTH, SECRET)
        assert timeout > 0
        return self._answer("client_credentials", "")


SEALER = Sealer(MasterKey.generate())


def grants_on(
    store: SqlStore,
    provider: ScriptedProvider,
    clock: Callable[[], float] = time.time,
    **options: float,
) -> UpstreamGrants:
    return UpstreamGrants(
        store=store,
        sealer=SEALER,
        audit=AuditLog(store),
        metrics=Metrics(),
        provider=provider,  # type: ignore[arg-type]
        clock=clock,
        sleep=lambda s: time.sleep(min(s, 0.01)),
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
def connected(store: SqlStore, provider: ScriptedProvider) -> Iterator[UpstreamGrants]:
    """A connected grant whose access token has expired: the first use refreshes."""
    for connector in (REFRESHING, CLIENT_CREDENTIALS):
        store.put_credential(
            connector.name, SEALER.seal(f"connector:{connector.name}", SECRET.encode()), 0
        )
    grants = grants_on(store, provider)
    grants.connect(REFRESHING, ProviderTokens("at-old", int(time.time()) - 1, "rt-0"), "test")
    return grants


def audit_decisions(store: SqlStore) -> list[tuple[str, str]]:
    return [
        (json.loads(r.record)["decision"], json.loads(r.record)["reason"])
        for r in store.audit_rows()
    ]


def test_concurrent_callers_in_one_process_share_one_refresh(
    connected: UpstreamGrants, provider: ScriptedProvider, store: SqlStore
) -> None:
    provider.delay = 0.2
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(connected.access(REFRESHING).access_token))
        for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [grant for grant, _ in provider.calls] == ["refresh_token"]
    assert len(results) == 20
    assert len(set(results)) == 1
    assert audit_decisions(store) == [("connected", "test"), ("refreshed", "refresh_token")]


def test_two_brokers_on_one_store_share_one_refresh(
    store_factory: tuple[str, Path, str], provider: ScriptedProvider
) -> None:
    stores = [open_kind(*store_factory) for _ in range(2)]
    try:
        first, second = (grants_on(s, provider) for s in stores)
        stores[0].put_credential("crm", SEALER.seal("connector:crm", SECRET.encode()), 0)
        first.connect(REFRESHING, ProviderTokens("at-old", int(time.time()) - 1, "rt-0"), "t")
        provider.delay = 0.3
        results: list[str] = []
        threads = [
            threading.Thread(target=lambda g=g: results.append(g.access(REFRESHING).access_token))
            for g in (first, second) * 5
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(provider.calls) == 1
        assert len(results) == 10
        assert len(set(results)) == 1
    finally:
        for opened in stores:
            opened.close()


def test_the_rotated_refresh_token_is_stored_before_use_and_used_next(
    connected: UpstreamGrants, provider: ScriptedProvider, store: SqlStore
) -> None:
    first = connected.access(REFRESHING)
    rotated = provider.refresh_token
    second = connected.access(REFRESHING, newer_than=first.generation)
    assert provider.calls == [("refresh_token", "rt-0"), ("refresh_token", rotated)]
    assert second.generation == first.generation + 1
    # a broker that starts now reads the rotated token from the store
    fresh = grants_on(store, provider)
    assert fresh.access(REFRESHING).access_token == second.access_token
    assert len(provider.calls) == 2


def test_a_fresh_token_is_served_from_cache_and_a_failed_generation_is_not(
    connected: UpstreamGrants, provider: ScriptedProvider
) -> None:
    access = connected.access(REFRESHING)
    assert connected.access(REFRESHING) is access
    assert len(provider.calls) == 1
    # a caller whose call failed with generation g gets a newer token, once
    newer = connected.access(REFRESHING, newer_than=access.generation)
    assert newer.generation == access.generation + 1
    assert connected.access(REFRESHING, newer_than=access.generation) is newer
    assert len(provider.calls) == 2


def test_a_token_is_refreshed_ahead_of_expiry_by_the_margin_at_most_half_its_life(
    connected: UpstreamGrants, provider: ScriptedProvider
) -> None:
    provider.lifetime = 100  # margin 60 > half of 100: refreshed once 50 s are left
    access = connected.access(REFRESHING)
    assert access.fresh(60, access.expires_at - 51)
    assert not access.fresh(60, access.expires_at - 50)
    provider.lifetime = 3600
    long_lived = connected.access(REFRESHING, newer_than=access.generation)
    assert long_lived.fresh(60, long_lived.expires_at - 61)
    assert not long_lived.fresh(60, long_lived.expires_at - 60)


def test_invalid_grant_marks_the_connector_for_reauthorization(
    connected: UpstreamGrants, provider: ScriptedProvider, store: SqlStore
) -> None:
    provider.refresh_token = "rt-revoked-by-the-user"
    with pytest.raises(GrantUnavailable) as refused:
        connected.access(REFRESHING)
    assert refused.value.reason == "needs_reauthorization"
    assert "jobtoken broker connect crm" in refused.value.text
    grant = store.grant("crm")
    assert grant is not None
    assert grant.state == "needs_reauthorization"
    assert audit_decisions(store)[-1] == ("refresh_failed", "invalid_grant")
    calls = len(provider.calls)
    with pytest.raises(GrantUnavailable):
        connected.access(REFRESHING)
    with pytest.raises(GrantUnavailable):
        connected.check_ready(REFRESHING)
    assert len(provider.calls) == calls  # no call once the grant is known dead


def test_a_provider_outage_is_retried_a_bounded_number_of_times_then_paused(
    connected: UpstreamGrants, provider: ScriptedProvider, store: SqlStore
) -> None:
    down = ProviderError("unavailable", "the provider answered 503")
    provider.failures = [down, down, down, down]
    with pytest.raises(GrantUnavailable) as refused:
        connected.access(REFRESHING)
    assert refused.value.reason == "provider_unavailable"
    assert refused.value.retry_after >= 1
    assert len(provider.calls) == 3  # attempts
    for _ in range(5):  # no storm: within the cool-down nobody calls the provider
        with pytest.raises(GrantUnavailable):
            connected.access(REFRESHING)
    assert len(provider.calls) == 3
    grant = store.grant("crm")
    assert grant is not None
    assert grant.state == "ready"
    assert grant.lease_owner == ""
    assert audit_decisions(store)[-1] == ("refresh_failed", "provider_unavailable")


def test_during_an_outage_a_token_that_has_not_expired_is_still_served(
    store: SqlStore, provider: ScriptedProvider
) -> None:
    store.put_credential("crm", SEALER.seal("connector:crm", SECRET.encode()), 0)
    now = [time.time()]
    grants = grants_on(store, provider, clock=lambda: now[0])
    # a 4 s token is due for refresh after 2 s (half its life), and valid for 2 more
    grants.connect(REFRESHING, ProviderTokens("at-valid", int(now[0]) + 4, "rt-0"), "t")
    now[0] += 2.1  # the broker's clock, 2.1 s on
    provider.failures = [ProviderError("unavailable", "503")] * 3
    assert grants.access(REFRESHING).access_token == "at-valid"
    assert len(provider.calls) == 3


def test_client_credentials_need_no_connect(
    connected: UpstreamGrants, provider: ScriptedProvider
) -> None:
    access = connected.access(CLIENT_CREDENTIALS)
    assert provider.calls == [("client_credentials", "")]
    assert connected.access(CLIENT_CREDENTIALS) is access


def test_a_connector_never_connected_names_the_command(
    store: SqlStore, provider: ScriptedProvider
) -> None:
    grants = grants_on(store, provider)
    with pytest.raises(GrantUnavailable) as refused:
        grants.access(REFRESHING)
    assert refused.value.reason == "not_connected"
    assert "jobtoken broker connect crm --config" in refused.value.text
    assert provider.calls == []


def test_a_missing_client_secret_releases_the_lease(
    store: SqlStore, provider: ScriptedProvider
) -> None:
    grants = grants_on(store, provider)
    grants.connect(REFRESHING, ProviderTokens("at-old", 0, "rt-0"), "t")
    with pytest.raises(GrantUnavailable) as refused:
        grants.access(REFRESHING)
    assert refused.value.reason == "credential_missing"
    assert "connector set crm" in refused.value.text
    grant = store.grant("crm")
    assert grant is not None
    assert grant.lease_owner == ""
    assert provider.calls == []


def test_tokens_are_sealed_in_the_store_and_hashed_in_the_audit(
    connected: UpstreamGrants, provider: ScriptedProvider, store: SqlStore
) -> None:
    access = connected.access(REFRESHING)
    grant = store.grant("crm")
    assert grant is not None
    for secret in (access.access_token, provider.refresh_token, SECRET):
        assert secret.encode() not in grant.sealed
        assert all(secret not in row.record for row in store.audit_rows())
    assert repr(access).count("at-") == 0


def test_the_client_secret_can_come_from_a_sealed_credential_file(
    store: SqlStore, provider: ScriptedProvider, tmp_path: Path
) -> None:
    """credential_sealed_file holds an OAuth connector's client secret (GitOps)."""
    from dataclasses import replace

    from jobtoken.broker.secrets.seal_keys import SealKeys
    from jobtoken.broker.secrets.sealed_file import seal_credential

    _, public = SealKeys(store, SEALER).ensure_current()
    (tmp_path / "batch.sealed").write_text(seal_credential(SECRET.encode(), public))
    connector = replace(CLIENT_CREDENTIALS, credential_sealed_file=tmp_path / "batch.sealed")
    access = grants_on(store, provider).access(connector)  # the provider asserts the secret
    assert access.access_token.startswith("at-")
    assert provider.calls == [("client_credentials", "")]
    decisions = [json.loads(r.record)["decision"] for r in store.audit_rows()]
    assert "credential_opened" in decisions
