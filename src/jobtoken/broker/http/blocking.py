"""Blocking work (the store, JWKS and policy fetches, CPU-bound signing) off the event
loop, on one thread pool of the process.

``await blocking(fn, *args)`` is ``loop.run_in_executor`` on a bounded pool: the same
job as Starlette's ``run_in_threadpool``, without anyio's capacity limiter and
context-variable bookkeeping on every call, which measured about a tenth of the
event loop's time under ``POST /token`` load (``py-spy``; see docs/performance.md).

Public API: :func:`blocking`, :data:`MAX_THREADS`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["MAX_THREADS", "blocking"]

T = TypeVar("T")

#: threads one broker process runs blocking work on (anyio's default is 40 too)
MAX_THREADS = 40

_POOL = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="jobtoken-blocking")


async def blocking(fn: Callable[..., T], /, *args: object) -> T:
    """``fn(*args)`` on the process's thread pool; its result, or its exception."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_POOL, functools.partial(fn, *args))
