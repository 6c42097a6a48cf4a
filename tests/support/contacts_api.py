"""A small "contacts" API on loopback: the demo's upstream connector.

It stands for HubSpot or any SaaS API that takes a long-lived API key. It
answers ``GET /v1/contacts`` and ``GET /v1/contacts/<id>`` only when the
request carries ``Authorization: Bearer <api key>``, the key the broker keeps
encrypted and injects when it proxies a job's call. A job never sees the key.

It speaks HTTP/1.1 with keep-alive, as a SaaS API does, and counts the TCP
connections it accepted (``connections``) and those still open (``open_connections``),
so that tests can see the broker's proxy reuse its upstream connections.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from support.loopback import LoopbackServer

CONTACTS: tuple[dict[str, str], ...] = (
    {"id": "1", "name": "Ada Lovelace", "email": "ada@example.com"},
    {"id": "2", "name": "Grace Hopper", "email": "grace@example.com"},
    {"id": "3", "name": "Katherine Johnson", "email": "katherine@example.com"},
)


@dataclass
class ContactsApi(LoopbackServer):
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = field(default_factory=lambda: "ck_live_" + secrets.token_urlsafe(24))
    #: (method, path, authorized) of every request, for tests
    requests: list[tuple[str, str, bool]] = field(default_factory=list)
    #: the raw query string of every request, in order
    queries: list[str] = field(default_factory=list)
    #: TCP connections accepted since start, and those not yet closed
    connections: int = 0
    open_connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def connection_opened(self) -> None:
        with self._lock:
            self.connections += 1
            self.open_connections += 1

    def connection_closed(self) -> None:
        with self._lock:
            self.open_connections -= 1

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def authorized(self, header: str) -> bool:
        expected = f"Bearer {self.api_key}".encode()
        return hmac.compare_digest(header.encode(), expected)


def _handler_for(api: ContactsApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "contacts-api"
        protocol_version = "HTTP/1.1"
        #: headers and body go out as two writes: without this, keep-alive waits for
        #: the client's delayed ACK (~40 ms) on every answer
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            api.connection_opened()

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                api.connection_closed()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the demo prints what matters."""

        def do_GET(self) -> None:
            self._discard_body()
            path = urlsplit(self.path).path
            authorized = api.authorized(self.headers.get("Authorization", ""))
            api.requests.append(("GET", path, authorized))
            api.queries.append(urlsplit(self.path).query)
            if not authorized:
                self._json(401, {"error": "unauthorized", "message": "a valid API key is required"})
            elif path == "/v1/contacts":
                self._json(200, {"contacts": list(CONTACTS)})
            elif path.startswith("/v1/contacts/"):
                found = [c for c in CONTACTS if c["id"] == path.rsplit("/", 1)[1]]
                self._json(200, found[0]) if found else self._json(404, {"error": "not_found"})
            else:
                self._json(404, {"error": "not_found"})

        def _discard_body(self) -> None:
            """Read a body a GET may carry, so that the next request on the connection parses."""
            length = self.headers.get("Content-Length", "0")
            plain = length.isascii() and length.isdigit() and int(length) <= 1024 * 1024
            if "Transfer-Encoding" in self.headers or not plain:
                self.close_connection = True
            else:
                self.rfile.read(int(length))

        def _json(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
