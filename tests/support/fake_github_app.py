"""A fake GitHub App API on loopback that checks every documented field of the requests.

It plays api.github.com for one GitHub App with one installation on
``repositories`` (``owner/name``, one owner). It generates the app's RSA key
(``app_id``, ``private_key_pem``) and serves:

- ``GET /repos/{owner}/{repo}/installation`` (app JWT): ``{"id": installation_id, …}``,
  404 for a repository outside the installation;
- ``POST /app/installations/{id}/access_tokens`` (app JWT): the body must be exactly
  ``{"repositories": [names], "permissions": {name: level}}``, both non-empty, within
  the installation and ``app_permissions``; 201 with a ``ghs_…`` token that expires in
  ``token_lifetime`` seconds, ``repository_selection: selected`` and the repositories;
- ``DELETE /installation/token`` (a live installation token): 204, the token revoked;
- ``GET /repos/{owner}/{repo}/issues`` (``issues: read``) and
  ``GET /repos/{owner}/{repo}/contents/{path}`` (``contents: read``): only for a live
  installation token that covers the repository and the permission; 401 for a
  missing, unknown, revoked or expired token, 403 for one that does not cover it.

Every request must send ``Accept: application/vnd.github+json`` and
``X-GitHub-Api-Version: 2022-11-28``. An app JWT must verify against the app's public
key with an RS256 header, ``iss`` the app ID, integer ``iat``/``exp``,
``exp - iat <= 600``, ``iat`` at most 60 s ahead and ``exp`` at most 600 s ahead.
Whatever breaks a rule is appended to ``problems`` (tests assert it stays empty) and
answered 401 or 422; an API call the tests make on purpose with a dead token (401/403)
is not a problem. ``misbehave`` makes the token answer wrong on purpose:
``extra_permission``, ``extra_repository``, ``all_repositories``, ``bad_expires_at``,
``duplicate_key``; ``fail`` makes every request fail before it is served: ``huge``
(a 2 MiB answer), ``redirect`` (302 elsewhere), ``slow`` (``slow_seconds`` of silence),
``drip`` (a 201 declaring 1000 bytes, then one byte every 0.1 s for ``slow_seconds``),
``status_500``.

Usage::

    with FakeGitHubApp(repositories=("octo-org/app", "octo-org/lib")) as github:
        app = GitHubApp(github.app_id, github.private_key_pem, api_url=github.url)
        github.put("octo-org/app", "README.md", b"hello")
        github.tokens                  # token -> IssuedToken (repositories, revoked…)
        github.requests, github.problems
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jobtoken.wire.strict_json import StrictJsonError, loads_strict
from support.loopback import LoopbackServer

__all__ = ["FAILURES", "MISBEHAVIOURS", "FakeGitHubApp", "IssuedToken", "RecordedRequest"]

ACCEPT = "application/vnd.github+json"
API_VERSION = "2022-11-28"
MISBEHAVIOURS = (
    "extra_permission",
    "extra_repository",
    "all_repositories",
    "bad_expires_at",
    "duplicate_key",
)
FAILURES = ("huge", "redirect", "slow", "drip", "status_500")
_RANK = {"read": 1, "write": 2}
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    #: every header but Authorization
    headers: dict[str, str]
    body: bytes


@dataclass
class IssuedToken:
    #: ``owner/name``, lowercased
    repositories: tuple[str, ...]
    permissions: dict[str, str]
    expires_at: float
    revoked: bool = False

    def live(self) -> bool:
        return not self.revoked and time.time() < self.expires_at


def _default_permissions() -> dict[str, str]:
    return {"contents": "write", "issues": "write", "pull_requests": "write", "metadata": "read"}


@dataclass
class FakeGitHubApp(LoopbackServer):
    host: str = "127.0.0.1"
    port: int = 0
    app_id: str = "424242"
    installation_id: int = 7_000_001
    repositories: tuple[str, ...] = ("octo-org/app", "octo-org/lib")
    app_permissions: dict[str, str] = field(default_factory=_default_permissions)
    token_lifetime: int = 3600
    misbehave: str | None = None
    fail: str | None = None
    slow_seconds: float = 3.0
    requests: list[RecordedRequest] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)

    def __post_init__(self) -> None:
        owners = {r.split("/")[0].lower() for r in self.repositories}
        if len(owners) != 1 or not all(r.count("/") == 1 for r in self.repositories):
            raise ValueError("one installation: repositories are owner/name of one owner")
        self.owner = owners.pop()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = self._key.public_key()
        self.private_key_pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._files: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def put(self, repository: str, path: str, content: bytes) -> None:
        with self._lock:
            self._files[(repository.lower(), path)] = content

    def live_tokens(self) -> list[str]:
        with self._lock:
            return [token for token, issued in self.tokens.items() if issued.live()]

    def problem(self, text: str) -> None:
        with self._lock:
            self.problems.append(text)

    # -- the checks ----------------------------------------------------------------

    def check_app_jwt(self, authorization: str) -> bool:
        """Whether ``authorization`` is ``Bearer <a valid app JWT>``; records why not."""
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or not token:
            self.problem("an app JWT endpoint was called without Authorization: Bearer")
            return False
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"], "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            self.problem(f"the app JWT does not verify: {type(exc).__name__}")
            return False
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        found = []
        if header.get("alg") != "RS256":
            found.append(f"alg is {header.get('alg')!r}, not RS256")
        if claims.get("iss") != self.app_id:
            found.append(f"iss is {claims.get('iss')!r}, not the app id {self.app_id!r}")
        if not isinstance(iat, int) or not isinstance(exp, int):
            found.append("iat and exp are not integers")
        else:
            if exp - iat > 600:
                found.append(f"exp - iat is {exp - iat} s, over 600")
            if iat > now + 60:
                found.append("iat is in the future")
            if exp > now + 600:
                found.append("exp is more than 10 minutes ahead")
        for text in found:
            self.problem(f"app JWT: {text}")
        return not found

    def installation_token(self, authorization: str) -> IssuedToken | None:
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            issued = self.tokens.get(token) if scheme in ("Bearer", "token") else None
        return issued if issued is not None and issued.live() else None

    def issue(self, body: bytes) -> tuple[int, bytes]:
        """The answer to a token request, after checking every field of its body."""
        try:
            request = loads_strict(body)
        except StrictJsonError as exc:
            self.problem(f"the token request body is not strict JSON: {exc}")
            return 400, b'{"message": "Problems parsing JSON"}'
        if not isinstance(request, dict) or set(request) != {"repositories", "permissions"}:
            keys = sorted(request) if isinstance(request, dict) else type(request).__name__
            self.problem(f"the token request body is not exactly repositories+permissions: {keys}")
            return 422, b'{"message": "Validation Failed"}'
        names, asked = request["repositories"], request["permissions"]
        installed = {r.split("/")[1].lower(): r for r in self.repositories}
        found = []
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            found.append("repositories is not a non-empty list of names")
            names = []
        elif len({n.lower() for n in names}) != len(names):
            found.append("repositories names one twice")
        found += [f"repository {n!r} is not in the installation" for n in names if "/" in n]
        found += [f"repository {n!r} is not installed" for n in names if n.lower() not in installed]
        if not isinstance(asked, dict) or not asked:
            found.append("permissions is not a non-empty object")
            asked = {}
        for name, level in asked.items():
            held = self.app_permissions.get(name)
            if level not in _RANK or held is None or _RANK[level] > _RANK[held]:
                found.append(f"permission {name}:{level} is not the app's to grant")
        if found:
            for text in found:
                self.problem(f"token request: {text}")
            return 422, b'{"message": "Validation Failed"}'
        covered = [installed[n.lower()] for n in names]
        granted = dict(asked)
        if self.misbehave == "extra_permission":
            granted["administration"] = "write"
        if self.misbehave == "extra_repository":
            spare = [r for r in self.repositories if r not in covered]
            covered.append(spare[0] if spare else f"{self.owner}/not-asked")
        token = "ghs_" + "".join(secrets.choice(_ALPHABET) for _ in range(36))
        expires_at = int(time.time()) + self.token_lifetime
        with self._lock:
            self.tokens[token] = IssuedToken(
                tuple(r.lower() for r in covered), granted, float(expires_at)
            )
        answer: dict[str, object] = {
            "token": token,
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at)),
            "permissions": granted,
            "repository_selection": "selected",
            "repositories": [
                {"id": 1000 + i, "name": r.split("/")[1], "full_name": r}
                for i, r in enumerate(covered)
            ],
        }
        if self.misbehave == "all_repositories":
            answer["repository_selection"] = "all"
            del answer["repositories"]
        if self.misbehave == "bad_expires_at":
            answer["expires_at"] = "in an hour"
        text = json.dumps(answer)
        if self.misbehave == "duplicate_key":
            text = text[:-1] + ', "token": "ghs_' + "x" * 36 + '"}'
        return 201, text.encode()


def _handler_for(api: FakeGitHubApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fake-github-app"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``api.requests`` and ``api.problems`` instead."""

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
            with api._lock:
                api.requests.append(RecordedRequest(method, path, headers, body))
            if api.fail is not None:
                return self._failure(api.fail)
            authorization = self.headers.get("Authorization", "")
            if self.headers.get("Accept") != ACCEPT:
                api.problem(f"{method} {path}: Accept is {self.headers.get('Accept')!r}")
            if self.headers.get("X-GitHub-Api-Version") != API_VERSION:
                api.problem(f"{method} {path}: X-GitHub-Api-Version is missing or wrong")
            segments = [unquote(s) for s in path.split("/")[1:]]
            tokens_path = ["app", "installations", str(api.installation_id), "access_tokens"]
            if method == "POST" and segments == tokens_path:
                if not api.check_app_jwt(authorization):
                    return self._json(401, {"message": "A JSON web token could not be decoded"})
                if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                    api.problem("token request: Content-Type is not application/json")
                status, answer = api.issue(body)
                return self._send(status, answer)
            if method == "DELETE" and segments == ["installation", "token"]:
                issued = api.installation_token(authorization)
                if issued is None:
                    api.problem("DELETE /installation/token without a live installation token")
                    return self._json(401, {"message": "Bad credentials"})
                with api._lock:
                    issued.revoked = True
                return self._send(204, b"")
            if method == "GET" and len(segments) == 4 and segments[0] == "repos":
                repository = f"{segments[1]}/{segments[2]}".lower()
                if segments[3] == "installation":
                    if not api.check_app_jwt(authorization):
                        return self._json(401, {"message": "A JSON web token could not be decoded"})
                    if repository not in {r.lower() for r in api.repositories}:
                        return self._json(404, {"message": "Not Found"})
                    return self._json(
                        200, {"id": api.installation_id, "account": {"login": api.owner}}
                    )
                if segments[3] == "issues":
                    if self._allowed(authorization, repository, "issues"):
                        self._json(200, [{"number": 1, "title": "First issue", "state": "open"}])
                    return None
            if (
                method == "GET"
                and len(segments) >= 5
                and (segments[0], segments[3]) == ("repos", "contents")
            ):
                repository = f"{segments[1]}/{segments[2]}".lower()
                if self._allowed(authorization, repository, "contents"):
                    self._contents(repository, "/".join(segments[4:]))
                return None
            api.problem(f"{method} {path}: not an endpoint of this fake")
            return self._json(404, {"message": "Not Found"})

        def _failure(self, failure: str) -> None:
            if failure == "slow":
                time.sleep(api.slow_seconds)
            if failure == "redirect":
                self.send_response(302)
                self.send_header("Location", f"{api.url}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if failure == "drip":
                return self._drip()
            if failure == "huge":
                return self._send(200, b'{"token": "' + b"a" * (2 << 20) + b'"}')
            return self._json(500 if failure == "status_500" else 200, {"message": "Server Error"})

        def _drip(self) -> None:
            self.send_response(201)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            deadline = time.monotonic() + api.slow_seconds
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                while time.monotonic() < deadline:
                    self.wfile.write(b" ")
                    time.sleep(0.1)

        def _allowed(self, authorization: str, repository: str, permission: str) -> bool:
            issued = api.installation_token(authorization)
            if issued is None:
                self._json(401, {"message": "Bad credentials"})
                return False
            if repository not in issued.repositories or permission not in issued.permissions:
                self._json(403, {"message": "Resource not accessible by integration"})
                return False
            return True

        def _contents(self, repository: str, path: str) -> None:
            with api._lock:
                content = api._files.get((repository, path))
            if content is None:
                return self._json(404, {"message": "Not Found"})
            name = path.rsplit("/", 1)[-1]
            encoded = base64.b64encode(content).decode()
            return self._json(
                200, {"type": "file", "encoding": "base64", "name": name, "content": encoded}
            )

        def _json(self, status: int, body: object) -> None:
            self._send(status, json.dumps(body).encode())

        def _send(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                if body:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler
