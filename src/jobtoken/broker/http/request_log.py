"""The broker's request log and last line of defence: one JSON line per request (the
path without its query string, never a header or a body), and a bare 500
``server_error`` for an unexpected failure, logged by type and place only.

Each request gets a random id: in its log line, in the ``X-Request-Id`` response
header, and (``request_id(request)``) in the audit record of the decision it asked
for (``/token``, ``/revoke``, ``/introspect``, a webhook's revocations, a rate-limit
refusal), so that a log line, a user's report and an audit record can be matched.
(The proxy writes no audit record: its calls are in the log and the metrics.)

Public API: :class:`RequestLog` (ASGI middleware), :func:`request_id`.
"""

from __future__ import annotations

import logging
import secrets
import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobtoken.broker.http.oauth import NO_STORE
from jobtoken.broker.ops.logs import log_event

__all__ = ["RequestLog", "request_id"]


def request_id(request: Request) -> str:
    """The id :class:`RequestLog` gave this request ("" outside it)."""
    value = request.scope.get("state", {}).get("request_id", "")
    return value if isinstance(value, str) else ""


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
        rid = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
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
                    headers={**NO_STORE, "X-Request-Id": rid},
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
                request_id=rid,
            )
