"""A fake RFC 8693 broker on loopback, for the action's tests and benchmark.

    with FakeBroker() as broker:
        broker.url                      # "http://127.0.0.1:PORT"
        broker.override(scope="a b")    # change (or, with None, drop) fields of the reply
        broker.reply = (400, {"error": "invalid_scope"})   # or answer this instead
        broker.fail_next(503, count=2)  # the next 2 requests get this status
        broker.requests                 # every request: method, path, headers, form
        broker.issued, broker.revoked   # tokens handed out / revoked

`POST /token` answers, by default, like a well-behaved broker: a random
`access_token`, `token_type: Bearer`, `issued_token_type` access_token,
`expires_in` = the requested `ttl` (default 900), `scope` = the
requested scope, and a `token_id`. `POST /revoke` answers 200 (RFC 7009) and
records the `token` (or `token_id`) in `revoked`. Anything else is 404.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

from support.loopback import LoopbackServer

__all__ = ["ACCESS_TOKEN_TYPE", "FakeBroker", "RecordedRequest"]

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    #: the form fields of the body (last value wins); {} when not a form
    form: dict[str, str]
    body: bytes


@dataclass
class FakeBroker(LoopbackServer):
    host: str = "127.0.0.1"
    port: int = 0
    #: when set, POST /token answers (status, JSON body or raw bytes) instead
    reply: tuple[int, Any] | None = None
    #: status of POST /revoke
    revoke_status: int = 200
    #: tokens POST /revoke treats as a connector's shared credential: the token alone
    #: is answered 400 unsupported_token_type, as the jobtoken broker does
    shared_credentials: set[str] = field(default_factory=set)
    #: seconds to wait before answering (to exercise timeouts)
    delay: float = 0.0
    requests: list[RecordedRequest] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._overrides: dict[str, Any] = {}
        self._failures: list[int] = []
        self._lock = threading.Lock()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def override(self, **fields: Any) -> None:
        """Change fields of the default token reply; a value of None removes the field."""
        self._overrides.update(fields)

    def fail_next(self, status: int, count: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def token_reply(self, form: dict[str, str]) -> tuple[int, Any]:
        if self.reply is not None:
            return self.reply
        token = "jbt_" + secrets.token_urlsafe(32)
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "expires_in": int(form.get("ttl", "900")),
            "scope": form.get("scope", ""),
            "token_id": "tok_" + secrets.token_hex(8),
        }
        for name, value in self._overrides.items():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
        if isinstance(body.get("access_token"), str):
            self.issued.append(body["access_token"])
        return 200, body

    def _next_failure(self) -> int | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None


def _handler_for(broker: FakeBroker) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fake-broker"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``broker.requests``."""

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, MAX_BODY))
            form: dict[str, str] = {}
            if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                form = dict(parse_qsl(body.decode("ascii", "replace"), keep_blank_values=True))
            path = self.path.split("?")[0]
            broker.requests.append(
                RecordedRequest(self.command, path, dict(self.headers.items()), form, body)
            )
            if broker.delay:
                time.sleep(broker.delay)
            failure = broker._next_failure()
            if failure is not None:
                self._send(failure, {"error": "temporarily_unavailable"})
            elif self.command == "POST" and path == "/token":
                self._send(*broker.token_reply(form))
            elif self.command == "POST" and path == "/revoke":
                if form.get("token") in broker.shared_credentials and "subject_token" not in form:
                    self._send(400, {"error": "unsupported_token_type"})
                elif broker.revoke_status == 200:
                    broker.revoked.append(form.get("token") or form.get("token_id", ""))
                    self._send(200, {})
                else:
                    self._send(broker.revoke_status, {"error": "invalid_request"})
            else:
                self._send(404, {"error": "not_found"})

        def _send(self, status: int, body: Any) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True

    return Handler
