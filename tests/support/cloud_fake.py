"""The loopback HTTP server under the GCP and Azure fakes.

A fake subclasses ``CloudFake`` and implements ``handle(call) -> Reply``. Every
request is recorded in ``calls``; a request that breaks the documented shape
is answered with the service's error *and* recorded in ``violations`` with the
reason, so that a test can assert ``fake.violations == []`` and a provider
that sends a wrong field fails the test even if it would survive the error.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

from support.loopback import LoopbackServer
from support.oidc_issuer import FakeOidcIssuer

__all__ = ["Call", "CloudFake", "Reply", "verify_github_jwt"]

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    #: header names lower-cased
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        """The body as a form; a repeated field keeps its first value."""
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    def json(self) -> Any:
        return json.loads(self.body.decode())

    def bearer(self) -> str | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" and value else None


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class CloudFake(LoopbackServer):
    """Start with ``with Fake(...) as fake:``; ``fake.url`` is http://127.0.0.1:PORT."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self._lock = threading.Lock()
        self.port = 0

    def handle(self, call: Call) -> Reply:
        raise NotImplementedError

    def violation(self, reason: str, reply: Reply) -> Reply:
        """Record that a request broke the documented shape, and answer ``reply``."""
        with self._lock:
            self.violations.append(reason)
        return reply

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def _dispatch(self, call: Call) -> Reply:
        with self._lock:
            self.calls.append(call)
        return self.handle(call)


def verify_github_jwt(token: str, issuer: FakeOidcIssuer) -> dict[str, Any] | None:
    """The claims of ``token`` if ``issuer`` signed it and it is current; None otherwise.

    The audience is returned, not checked: each cloud reports a wrong audience its own way.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=issuer.private_key.public_key(),
            algorithms=["RS256"],
            issuer=issuer.url,
            options={"verify_aud": False, "require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.PyJWTError:
        return None
    return claims


def _handler_for(fake: CloudFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, MAX_BODY))
            parts = urlsplit(self.path)
            call = Call(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            try:
                reply = fake._dispatch(call)
            except Exception as exc:  # a bug in the fake: say so loudly
                fake.violations.append(f"fake crashed: {type(exc).__name__}: {exc}")
                reply = Reply(500, {"error": "fake crashed"})
            data = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            headers: Mapping[str, str] = {
                "Content-Type": "application/json; charset=utf-8",
                **reply.headers,
            }
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True

        do_GET = do_POST = _serve

    return Handler
