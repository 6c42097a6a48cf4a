"""Waiting for a refresh on the event loop (grant_waits.py): one flight per connector on
its own thread, every other caller awaiting it without a thread, bounded by the deadline."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import pytest

from jobtoken.broker.connectors.model import Connector, OAuthSettings
from jobtoken.broker.http.grant_waits import GrantWaits
from jobtoken.broker.upstream.grant_access import GrantUnavailable, UpstreamAccess

CRM = Connector(
    name="crm",
    credential="oauth2-refresh",
    oauth=OAuthSettings(client_id="c", token_url="https://provider.test/token"),
    base_url="https://api.test",
)


@dataclass
class SlowGrants:
    """UpstreamGrants' surface: ``access`` blocks until ``release`` is set."""

    deadline_seconds: float = 5.0
    release: threading.Event = field(default_factory=threading.Event)
    generation: int = 0
    threads: list[str] = field(default_factory=list)

    def cached(
        self, connector: Connector, *, newer_than: int = 0, refreshing: bool = False
    ) -> UpstreamAccess | None:
        return None

    def access(self, connector: Connector, *, newer_than: int = 0) -> UpstreamAccess:
        self.threads.append(threading.current_thread().name)
        self.release.wait(10)
        self.generation += 1
        return UpstreamAccess(f"at-{self.generation}", 2**40, 0, self.generation)


def test_many_callers_share_one_flight_on_the_connectors_own_thread() -> None:
    grants = SlowGrants()
    waits = GrantWaits(grants)  # type: ignore[arg-type]

    async def run() -> list[UpstreamAccess]:
        callers = [asyncio.create_task(waits.access(CRM)) for _ in range(60)]
        await asyncio.sleep(0.2)
        assert not any(c.done() for c in callers)  # all waiting, on the event loop
        grants.release.set()
        return await asyncio.gather(*callers)

    results = asyncio.run(run())
    waits.close()
    assert {r.access_token for r in results} == {"at-1"}
    assert grants.threads == ["jobtoken-refresh-crm_0"]  # one call, on crm's own thread


def test_a_caller_that_needs_a_newer_generation_leads_the_next_flight() -> None:
    grants = SlowGrants()
    grants.release.set()
    waits = GrantWaits(grants)  # type: ignore[arg-type]

    async def run() -> tuple[UpstreamAccess, UpstreamAccess]:
        first = asyncio.create_task(waits.access(CRM))
        await asyncio.sleep(0)
        newer = asyncio.create_task(waits.access(CRM, newer_than=1))
        return await first, await newer

    first, newer = asyncio.run(run())
    waits.close()
    assert (first.generation, newer.generation) == (1, 2)


def test_a_wait_ends_at_the_refresh_deadline() -> None:
    grants = SlowGrants(deadline_seconds=0.3)
    waits = GrantWaits(grants)  # type: ignore[arg-type]

    async def run() -> None:
        leader = asyncio.create_task(waits.access(CRM))
        await asyncio.sleep(0)
        with pytest.raises(GrantUnavailable) as refused:
            await waits.access(CRM)
        assert (refused.value.reason, refused.value.status) == ("provider_unavailable", 503)
        grants.release.set()
        assert (await leader).generation == 1

    asyncio.run(run())
    waits.close()
