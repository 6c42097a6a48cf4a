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
from jobtoken.broker.secrets.envelope import Envelope, MasterKey
from jobtoken.broker.store import GrantRow, SqlStore
from jobtoken.broker.upstream.grant_access import GrantUnavailable
from jobtoken.broker.upstream.grants import UpstreamGrants
from jobtoken.broker.upstream.oauth_client import (
    AuthorizationServerError,
    AuthorizationServerTokens,
)
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
    #: what the next calls raise instead of answering, one each
    failures: list[Exception] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    refresh_token: str = "rt-0"
    #: seconds the first request goes unanswered: a client's timeout cuts it first
    hang_first: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _answer(self, grant: str, presented: str, timeout: float) -> AuthorizationServerTokens:
        hang, self.hang_first = self.hang_first, 0.0
        if hang > timeout:
            time.sleep(timeout)
            with self.lock:
                self.calls.append((grant, presented))
            raise AuthorizationServerError("unavailable", "the provider took too long to answer")
        time.sleep(self.delay)
        with self.lock:
            self.calls.append((grant, presented))
            if self.failures:
                raise self.failures.pop(0)
            if grant == "refresh_token":
                if presented != self.refresh_token:
                    raise AuthorizationServerError(
                        "invalid_grant", "the provider answered invalid_grant"
                    )
                self.refresh_token = "rt-" + secrets.token_hex(8)
            access = "at-" + secrets.token_hex(8)
            return AuthorizationServerTokens(
                access, int(time.time()) + self.lifetime, self.refresh_token
            )

    def refresh(
        self, oauth: OAuthSettings, secret: str, refresh_token: str, *, timeout: float = 0
    ) -> AuthorizationServerTokens:
        assert (oauth, secret) == (OAUTH, SECRET)
        assert timeout > 0
        return self._answer("refresh_token", refresh_token, timeout)

    def client_credentials(
        self, oauth: OAuthSettings, secret: str, *, timeout: float = 0
    ) -> AuthorizationServerTokens:
        assert (oauth, secret) == (OAUTH, SECRET)
        assert timeout > 0
        return self._answer("client_credentials", "", timeout)


ENVELOPE = Envelope(MasterKey.generate())


@dataclass
class Clock:
    """The grants' wall clock: real time plus ``offset`` seconds a test moves on."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def grants_on(
    store: SqlStore,
    provider: ScriptedProvider,
    clock: Callable[[], float] = time.time,
    **options: float,
) -> UpstreamGrants:
    return UpstreamGrants(
        store=store,
        envelope=ENVELOPE,
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
            connector.name, ENVELOPE.encrypt(f"connector:{connector.name}", SECRET.encode()), 0
        )
    grants = grants_on(store, provider)
    grants.connect(
        REFRESHING, AuthorizationServerTokens("at-old", int(time.time()) - 1, "rt-0"), "test"
    )
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
        stores[0].put_credential("crm", ENVELOPE.encrypt("connector:crm", SECRET.encode()), 0)
        first.connect(
            REFRESHING, AuthorizationServerTokens("at-old", int(time.time()) - 1, "rt-0"), "t"
        )
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
        connected.require_ready(REFRESHING)
    assert len(provider.calls) == calls  # no call once the grant is known dead


def test_a_provider_outage_is_retried_a_bounded_number_of_times_then_paused(
    connected: UpstreamGrants, provider: ScriptedProvider, store: SqlStore
) -> None:
    down = AuthorizationServerError("unavailable", "the provider answered 503")
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
    store.put_credential("crm", ENVELOPE.encrypt("connector:crm", SECRET.encode()), 0)
    now = [time.time()]
    grants = grants_on(store, provider, clock=lambda: now[0])
    # a 4 s token is due for refresh after 2 s (half its life), and valid for 2 more
    grants.connect(REFRESHING, AuthorizationServerTokens("at-valid", int(now[0]) + 4, "rt-0"), "t")
    now[0] += 2.1  # the broker's clock, 2.1 s on
    provider.failures = [AuthorizationServerError("unavailable", "503")] * 3
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
    grants.connect(REFRESHING, AuthorizationServerTokens("at-old", 0, "rt-0"), "t")
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

    _, public = SealKeys(store, ENVELOPE).ensure_current()
    (tmp_path / "batch.sealed").write_text(seal_credential(SECRET.encode(), public))
    connector = replace(CLIENT_CREDENTIALS, credential_sealed_file=tmp_path / "batch.sealed")
    access = grants_on(store, provider).access(connector)  # the provider asserts the secret
    assert access.access_token.startswith("at-")
    assert provider.calls == [("client_credentials", "")]
    decisions = [json.loads(r.record)["decision"] for r in store.audit_rows()]
    assert "credential_opened" in decisions


@pytest.mark.parametrize(
    "failure",
    [
        AuthorizationServerError(
            "invalid_response", "the token response's expires_in is not a number"
        ),
        ValueError("an answer nothing else read"),
    ],
    ids=["invalid-response", "any-exception"],
)
def test_an_unreadable_answer_releases_the_lease_and_the_next_try_succeeds_at_once(
    store: SqlStore, provider: ScriptedProvider, failure: Exception
) -> None:
    """A provider answering garbage once (``"expires_in": "²"``, or anything its reading
    raises), then healthy: a bad gateway with no token to serve, the lease given back
    with a cool-down, and the first call after the cool-down refreshes at once."""
    store.put_credential("batch", ENVELOPE.encrypt("connector:batch", SECRET.encode()), 0)
    clock = Clock()
    grants = grants_on(store, provider, clock=clock, deadline_seconds=3.0)  # type: ignore[arg-type]
    provider.failures = [failure]
    with pytest.raises(GrantUnavailable) as refused:
        grants.access(CLIENT_CREDENTIALS)
    assert (refused.value.reason, refused.value.status) == ("provider_refused", 400)
    grant = store.grant("batch")
    assert grant is not None
    assert grant.lease_owner == ""
    assert grant.retry_at_ms > (time.time() + 4) * 1000  # the cool-down (5-7.5 s)
    assert audit_decisions(store)[-1] == ("refresh_failed", "provider_refused")
    clock.offset = 8.0  # past the cool-down
    started = time.monotonic()
    assert grants.access(CLIENT_CREDENTIALS).access_token.startswith("at-")
    assert time.monotonic() - started < 1.0
    assert len(provider.calls) == 2


class ReadsBeforeAnotherFails:
    """A broker's store whose first read of the grant is followed, before the broker
    goes on, by ``meanwhile``: another broker's whole refresh."""

    def __init__(self, store: SqlStore, meanwhile: Callable[[], None]) -> None:
        self._store, self._meanwhile = store, [meanwhile]

    def grant(self, connector: str) -> GrantRow | None:
        row = self._store.grant(connector)
        while self._meanwhile:
            self._meanwhile.pop()()
        return row

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


def test_no_broker_calls_the_provider_during_another_brokers_cool_down(
    store_factory: tuple[str, Path, str], provider: ScriptedProvider
) -> None:
    """A broker that read the grant before another's refresh failed cannot take the
    lease on what it read: the cool-down holds for every broker (issue 20, item 8)."""
    stores = [open_kind(*store_factory) for _ in range(2)]
    try:
        stores[0].put_credential("crm", ENVELOPE.encrypt("connector:crm", SECRET.encode()), 0)
        first = grants_on(stores[0], provider)
        first.connect(
            REFRESHING, AuthorizationServerTokens("at-old", int(time.time()) - 1, "rt-0"), "t"
        )
        provider.failures = [AuthorizationServerError("unavailable", "503")] * 6

        def first_fails() -> None:
            with pytest.raises(GrantUnavailable):
                first.access(REFRESHING)
            assert len(provider.calls) == 3

        second = grants_on(ReadsBeforeAnotherFails(stores[1], first_fails), provider)  # type: ignore[arg-type]
        with pytest.raises(GrantUnavailable) as refused:
            second.access(REFRESHING)
        assert refused.value.reason == "provider_unavailable"
        assert refused.value.retry_after >= 1
        assert len(provider.calls) == 3  # the first broker's tries, none of the second's
        grant = stores[1].grant("crm")
        assert grant is not None
        assert grant.lease_owner == ""
        assert grant.retry_at_ms > time.time() * 1000
    finally:
        for opened in stores:
            opened.close()


def test_a_request_the_provider_never_answers_is_retried_within_the_deadline(
    connected: UpstreamGrants, provider: ScriptedProvider, store: SqlStore
) -> None:
    """Each try waits its share of the deadline (3 s over 3 tries: 1 s), not all of it,
    so a provider that does not answer once is asked again and the refresh succeeds
    (issue 20, item 7)."""
    grants = grants_on(store, provider, deadline_seconds=3.0)
    provider.hang_first = 10.0
    started = time.monotonic()
    access = grants.access(REFRESHING)
    elapsed = time.monotonic() - started
    assert access.access_token.startswith("at-")
    assert len(provider.calls) == 2
    assert 1.0 <= elapsed < 2.5
    assert audit_decisions(store)[-1] == ("refreshed", "refresh_token")


def test_while_a_refresh_is_in_flight_callers_get_the_current_token_at_once(
    store_factory: tuple[str, Path, str], provider: ScriptedProvider
) -> None:
    """A slow refresh (1 s) of a token due for refresh but 40 s from expiry: other
    threads of the refresher's process and another broker get the current token at
    once; close to its expiry they wait for the new one (issue 20, item 10)."""
    stores = [open_kind(*store_factory) for _ in range(2)]
    try:
        stores[0].put_credential("crm", ENVELOPE.encrypt("connector:crm", SECRET.encode()), 0)
        clock = Clock()
        first, second = (grants_on(s, provider, clock=clock) for s in stores)  # type: ignore[arg-type]
        # 100 s of life: refreshed once 50 s are left, served while 5 s are left
        first.connect(
            REFRESHING, AuthorizationServerTokens("at-current", int(time.time()) + 100, "rt-0"), "t"
        )
        clock.offset = 60.0
        provider.delay = 1.0
        refreshed: list[str] = []
        refresher = threading.Thread(
            target=lambda: refreshed.append(first.access(REFRESHING).access_token)
        )
        refresher.start()
        time.sleep(0.3)  # the refresher holds the lock and the lease, waiting on the provider
        for grants in (first, second):
            started = time.monotonic()
            assert grants.access(REFRESHING).access_token == "at-current"
            assert time.monotonic() - started < 0.2
        refresher.join()
        assert refreshed[0] != "at-current"
        assert len(provider.calls) == 1

        # 3 s before the new token's expiry nothing old is handed out: callers wait
        new = second.access(REFRESHING)
        assert new.access_token == refreshed[0]
        clock.offset = new.expires_at - time.time() - 3
        refresher = threading.Thread(target=lambda: first.access(REFRESHING))
        refresher.start()
        time.sleep(0.3)
        started = time.monotonic()
        newest = second.access(REFRESHING)
        assert time.monotonic() - started > 0.4  # it waited for the refresh
        assert newest.generation == new.generation + 1
        refresher.join()
        assert len(provider.calls) == 2
    finally:
        for opened in stores:
            opened.close()


def test_a_provider_going_down_and_a_grant_dying_are_logged_once(
    connected: UpstreamGrants,
    provider: ScriptedProvider,
    store: SqlStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first failed refresh of an outage is logged, not the ones after it; the
    refresh that ends it is, and so is a grant that dies (issue 20, item 11)."""
    clock = Clock()
    grants = grants_on(store, provider, clock=clock)  # type: ignore[arg-type]
    down = AuthorizationServerError("unavailable", "the provider answered 503")
    caplog.set_level("INFO", logger="jobtoken.broker")

    def messages() -> list[str]:
        return [r.getMessage() for r in caplog.records if "connector's" in r.getMessage()]

    for _ in range(2):  # two outages' worth of failed refreshes, a cool-down apart
        provider.failures = [down] * 3
        with pytest.raises(GrantUnavailable):
            grants.access(REFRESHING)
        clock.offset += 10
    assert messages() == ["connector's provider failed a refresh; retried after a cool-down"]
    first = grants.access(REFRESHING)
    assert messages()[-1] == "connector's provider refreshes its grant again"
    provider.refresh_token = "rt-revoked-by-the-user"
    with pytest.raises(GrantUnavailable):
        grants.access(REFRESHING, newer_than=first.generation)
    assert messages()[-1] == (
        "connector's grant needs re-authorization at its provider (broker connect)"
    )
    assert len(messages()) == 3
    assert all(SECRET not in r.getMessage() for r in caplog.records)
