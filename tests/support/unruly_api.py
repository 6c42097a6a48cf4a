"""An upstream API on loopback that breaks an outbound client's bounds, one path per way.

HTTP/1.1 with keep-alive; every answer is chunked (no ``Content-Length``) unless the
path says otherwise, so the client can only learn the size by reading:

- ``/v1/contacts/small``: ``{"ok": true}`` at once (Content-Length);
- ``/v1/contacts/endless``: 1 KiB chunks, as fast as the socket takes them, for up to
  ``endless_seconds``;
- ``/v1/contacts/declared``: declares ``Content-Length: 1000000000`` and sends nothing;
- ``/v1/contacts/stall``: the status line and headers, then nothing for ``stall_seconds``;
- ``/v1/contacts/drip``: one byte every ``drip_interval`` seconds for ``stall_seconds``,
  so that no single read waits long but the whole answer never ends in time;
- ``/v1/contacts/drip_declared``: the same drip under ``Content-Length: 1000`` (more
  than it sends), for a client that would wait for a whole buffer before it looks at
  the clock.

``aborted`` counts answers the client stopped reading (a broken pipe or reset before
the server finished), and ``connections`` the TCP connections it accepted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from support.loopback import LoopbackServer


@dataclass
class UnrulyApi(LoopbackServer):
    host: str = "127.0.0.1"
    port: int = 0
    endless_seconds: float = 10.0
    stall_seconds: float = 5.0
    drip_interval: float = 0.1
    connections: int = 0
    aborted: int = 0
    #: (path, seconds the server spent answering) of every request, once it ends
    answered: list[tuple[str, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def count(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)


def _handler_for(api: UnrulyApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        #: headers and body go out as two writes: without this, keep-alive waits for
        #: the client's delayed ACK (~40 ms) on every answer
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def setup(self) -> None:
            super().setup()
            api.count("connections")

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            started = time.monotonic()
            try:
                self._answer(path)
            except (BrokenPipeError, ConnectionResetError):
                api.count("aborted")
                self.close_connection = True
            api.answered.append((path, time.monotonic() - started))

        def _answer(self, path: str) -> None:
            if path == "/v1/contacts/small":
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if path == "/v1/contacts/declared":
                self.send_response(200)
                self.send_header("Content-Length", "1000000000")
                self.end_headers()
                self.wfile.flush()
                self._wait(api.stall_seconds)
                self.close_connection = True
                return
            if path == "/v1/contacts/drip_declared":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self._drip(lambda: self.wfile.write(b"x"))
                self.close_connection = True
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            if path == "/v1/contacts/endless":
                deadline = time.monotonic() + api.endless_seconds
                while time.monotonic() < deadline:
                    self._chunk(b"x" * 1024)
            elif path == "/v1/contacts/stall":
                self._wait(api.stall_seconds)
            elif path == "/v1/contacts/drip":
                self._drip(lambda: self._chunk(b"x"))
            self._chunk(b"")

        def _drip(self, send_one: Callable[[], object]) -> None:
            deadline = time.monotonic() + api.stall_seconds
            while time.monotonic() < deadline:
                send_one()
                self.wfile.flush()
                time.sleep(api.drip_interval)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _wait(self, seconds: float) -> None:
            """Sleep, but notice when the client hangs up (a stalled server still reads)."""
            self.connection.settimeout(seconds)
            try:
                if self.connection.recv(1) == b"":
                    raise ConnectionResetError
            except TimeoutError:
                pass

    return Handler
