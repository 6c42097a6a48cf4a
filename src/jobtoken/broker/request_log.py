"""The broker's request log and last line of defence: one JSON line per request (the
path without its query string, never a header or a body), and a bare 500
``server_error`` for an unexpected failure, logged by type and place only.

Public API: :class:`RequestLog` (ASGI middleware).
"""

from __future__ import annotations

import logging
import time

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobtoken.broker.logs import log_event
from jobtoken.broker.oauth import NO_STORE

__all__ = ["RequestLog"]


class RequestLog:
    """One JSON line per request (path without query); a 500 for unexpected errors."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 0

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        except Exception:
            logging.getLogger("jobtoken.broker").error(
                "unhandled error", exc_info=True, extra={"fields": {"path": scope["path"]}}
            )
            if status == 0:
                status = 500
                await JSONResponse(
                    {"error": "server_error", "error_description": "internal error"},
                    status_code=500,
                    headers=NO_STORE,
                )(scope, receive, send)
        finally:
            client = scope.get("client")
            log_event(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
                client=client[0] if client else "",
            )
