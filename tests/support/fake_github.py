"""A fake GitHub REST API (repository contents) on loopback, for policy-source tests.

It serves what ``GitHubPolicySource`` reads, the way api.github.com does:
``GET /repos/{owner}/{repo}/contents/{path}[?ref=BRANCH]`` with
``Authorization: Bearer <token>``. Without ``ref`` the repository's default
branch answers. ``Accept: application/vnd.github.raw+json`` returns the raw
bytes; any other ``Accept`` returns GitHub's JSON object (``type``,
``encoding: base64``, ``content``…). Unknown repository or file: 404
``{"message": "Not Found"}``; wrong or missing token: 401
``{"message": "Bad credentials"}``.

Usage::

    with FakeGitHubApi() as github:
        github.put("octo-org/app", ".github/jobtoken.yml", b"version: 1 ...")
        github.put("octo-org/app", ".github/jobtoken.yml", b"...", branch="feature")
        github.fail_next(403)          # next request: 403 rate limited
        github.fail_next("slow")       # next request: sleeps slow_seconds first
        github.requests                # [(method, path, query, authorization ok?)]
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from support.loopback import LoopbackServer

__all__ = ["FakeGitHubApi", "RecordedRequest"]

Failure = int | str


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    authorized: bool
    accept: str


@dataclass
class FakeGitHubApi(LoopbackServer):
    host: str = "127.0.0.1"
    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    slow_seconds: float = 3.0
    default_branch: str = "main"
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._files: dict[tuple[str, str, str], bytes] = {}
        self._failures: list[Failure] = []
        self._lock = threading.Lock()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def put(self, repository: str, path: str, content: bytes, *, branch: str | None = None) -> None:
        with self._lock:
            self._files[(repository.lower(), branch or self.default_branch, path)] = content

    def fail_next(self, failure: Failure, count: int = 1) -> None:
        """The next ``count`` requests answer HTTP ``failure`` (an int) or are ``"slow"``."""
        if not (isinstance(failure, int) or failure == "slow"):
            raise ValueError("fail_next takes an HTTP status code or 'slow'")
        with self._lock:
            self._failures.extend([failure] * count)

    def _take_failure(self) -> Failure | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _file(self, repository: str, branch: str, path: str) -> bytes | None:
        with self._lock:
            return self._files.get((repository.lower(), branch, path))


def _handler_for(api: FakeGitHubApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fake-github-api"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``api.requests`` instead."""

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            given = self.headers.get("Authorization", "").encode()
            authorized = hmac.compare_digest(given, f"Bearer {api.token}".encode())
            accept = self.headers.get("Accept", "")
            api.requests.append(RecordedRequest("GET", parts.path, query, authorized, accept))
            failure = api._take_failure()
            if failure == "slow":
                time.sleep(api.slow_seconds)
            elif isinstance(failure, int):
                self._json(failure, {"message": "API rate limit exceeded"})
                return
            if not authorized:
                self._json(401, {"message": "Bad credentials"})
                return
            segments = parts.path.split("/")
            if len(segments) < 6 or segments[1] != "repos" or segments[4] != "contents":
                self._json(404, {"message": "Not Found"})
                return
            repository = f"{unquote(segments[2])}/{unquote(segments[3])}"
            path = unquote("/".join(segments[5:]))
            branch = query.get("ref", [api.default_branch])[0]
            content = api._file(repository, branch, path)
            if content is None:
                self._json(404, {"message": "Not Found"})
            elif accept == "application/vnd.github.raw+json":
                self._send(200, content, "application/vnd.github.raw+json")
            else:
                self._json(
                    200,
                    {
                        "type": "file",
                        "encoding": "base64",
                        "size": len(content),
                        "name": path.rsplit("/", 1)[-1],
                        "path": path,
                        "content": base64.b64encode(content).decode(),
                    },
                )

        def _json(self, status: int, body: object) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

    return Handler
