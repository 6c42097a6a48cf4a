"""Waiting for a connector's OAuth refresh on the event loop, not on a thread.

A proxied call whose connector's access token is due for refresh must wait for it, and
a provider that does not answer makes that wait last up to the refresh deadline (15 s).
Waiting on the blocking pool (``http/blocking.py``) would hold one of its threads per
call, so 40 calls waiting on one hung provider would stall ``/healthz`` and every other
connector. :class:`GrantWaits` keeps the wait off every shared thread:

- a token :meth:`UpstreamGrants.cached` returns (fresh, or servable while a refresh
  is in flight) is used at once, on the event loop, with no thread at all;
- otherwise one call per connector (the *flight*) runs :meth:`UpstreamGrants.access`
  on that connector's own one-thread executor, so one connector's outage holds one
  thread of its own and no other's;
- every other call for that connector awaits the flight (an asyncio future) for at
  most the refresh deadline, then takes its result, or its error, or, if the result
  is not newer than the generation it must beat (after an upstream 401), leads the
  next flight.

Public API: :class:`GrantWaits`.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from jobtoken.broker.connectors.model import Connector
from jobtoken.broker.upstream.grant_access import GrantUnavailable, UpstreamAccess
from jobtoken.broker.upstream.grants import UpstreamGrants

__all__ = ["GrantWaits"]


class GrantWaits:
    """One worker's waits for its connectors' refreshes (module docstring). Use it from
    the event loop only."""

    def __init__(self, grants: UpstreamGrants) -> None:
        self._grants = grants
        self._flights: dict[str, asyncio.Future[UpstreamAccess]] = {}
        self._executors: dict[str, ThreadPoolExecutor] = {}

    async def access(self, connector: Connector, *, newer_than: int = 0) -> UpstreamAccess:
        """What :meth:`UpstreamGrants.access` returns or raises, without holding a
        shared thread while it waits."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._grants.deadline_seconds
        while True:
            flight = self._flights.get(connector.name)
            ready = self._grants.cached(
                connector, newer_than=newer_than, refreshing=flight is not None
            )
            if ready is not None:
                return ready
            if flight is None:
                return await asyncio.shield(self._start(loop, connector, newer_than))
            remaining = give_up - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                access = await asyncio.wait_for(asyncio.shield(flight), remaining)
            except TimeoutError:
                raise GrantUnavailable(
                    "provider_unavailable",
                    f"connector {connector.name} is unavailable: the refresh did not finish "
                    "in time; try again later",
                ) from None
            if access.generation > newer_than:
                return access

    def close(self) -> None:
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)

    def _start(
        self, loop: asyncio.AbstractEventLoop, connector: Connector, newer_than: int
    ) -> asyncio.Future[UpstreamAccess]:
        name = connector.name
        executor = self._executors.get(name)
        if executor is None:
            executor = ThreadPoolExecutor(1, thread_name_prefix=f"jobtoken-refresh-{name}"[:40])
            self._executors[name] = executor
        flight = loop.run_in_executor(
            executor, lambda: self._grants.access(connector, newer_than=newer_than)
        )
        self._flights[name] = flight

        def landed(done: asyncio.Future[UpstreamAccess]) -> None:
            if self._flights.get(name) is done:
                del self._flights[name]
            if not done.cancelled():
                done.exception()  # retrieved: a flight nobody awaited logs nothing

        flight.add_done_callback(landed)
        return flight
