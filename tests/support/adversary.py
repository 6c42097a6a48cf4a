"""Tools of the adversarial suite (``tests/adversarial``): forged JWTs, a hostile HTTP
server that answers with whatever bytes a test scripts, and the broker store's counts.

    forge(key, {"alg": "RS256", "kid": kid}, payload)    # a JWS over exactly these bytes
    with HostileServer(raw=b"HTTP/1.1 302 Found\\r\\nLocation: ...\\r\\n\\r\\n") as server:
        ...                                              # server.requests: paths asked for
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from support.loopback import LoopbackServer

__all__ = ["HostileServer", "StoreCounts", "b64", "forge", "http_response", "sign"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(key: rsa.RSAPrivateKey, signing_input: str) -> str:
    """The base64url RS256 signature of ``signing_input``."""
    return b64(key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()))


def forge(
    key: rsa.RSAPrivateKey, header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes
) -> str:
    """A compact RS256 JWS over exactly these header and payload bytes."""
    raw_header = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw_payload = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64(raw_header)}.{b64(raw_payload)}"
    return f"{signing_input}.{sign(key, signing_input)}"


def http_response(status: str, body: bytes = b"", headers: tuple[str, ...] = ()) -> bytes:
    """The bytes of an HTTP/1.1 response that closes its connection."""
    head = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class HostileServer(LoopbackServer):
    """Answers every request with ``raw``, after ``hang_seconds``, one byte every
    ``trickle_seconds`` when that is set (a slowloris answer)."""

    host: str = "127.0.0.1"
    port: int = 0
    raw: bytes = b""
    hang_seconds: float = 0.0
    trickle_seconds: float = 0.0
    requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read ``server.requests``."""

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = self.headers.get("Content-Length", "0")
                self.rfile.read(int(length) if length.isdigit() else 0)
                with server._lock:
                    server.requests.append(self.path.split("?")[0])
                time.sleep(server.hang_seconds)
                try:
                    if server.trickle_seconds:
                        for index in range(len(server.raw)):
                            self.wfile.write(server.raw[index : index + 1])
                            self.wfile.flush()
                            time.sleep(server.trickle_seconds)
                    else:
                        self.wfile.write(server.raw)
                except OSError:  # the client gave up: what the test wants
                    pass
                self.close_connection = True

        return Handler


@dataclass(frozen=True)
class StoreCounts:
    """Rows of the broker's SQLite store that an attack must not add (or must add)."""

    audit: int
    tokens: int
    denied: int

    @classmethod
    def of(cls, db_path: Path) -> StoreCounts:
        with sqlite3.connect(db_path) as db:
            (audit,) = db.execute("SELECT count(*) FROM audit").fetchone()
            (tokens,) = db.execute("SELECT count(*) FROM tokens").fetchone()
            records = [json.loads(r) for (r,) in db.execute("SELECT record FROM audit")]
        denied = sum(1 for record in records if record.get("decision") == "denied")
        return cls(int(audit), int(tokens), denied)


def last_audit(db_path: Path) -> dict[str, Any]:
    """The newest audit record of the broker's SQLite store."""
    with sqlite3.connect(db_path) as db:
        (record,) = db.execute("SELECT record FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    loaded: dict[str, Any] = json.loads(record)
    return loaded
