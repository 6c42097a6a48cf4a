"""A fake GitHub Actions OIDC issuer on loopback, for tests and the demo.

It plays two parts of GitHub at once:

- the Actions runtime's ID-token endpoint, the one a job reaches through
  ``ACTIONS_ID_TOKEN_REQUEST_URL`` and ``ACTIONS_ID_TOKEN_REQUEST_TOKEN``:
  ``GET /token?api-version=2.0&audience=AUD`` with
  ``Authorization: bearer <request token>`` answers ``{"value": "<jwt>"}``;
- the issuer ``https://token.actions.githubusercontent.com``:
  ``/.well-known/openid-configuration`` and ``/.well-known/jwks``.

Tokens are RS256 (``kid`` set, a new one for each issuer) and carry every claim
GitHub documents, in GitHub's shapes (IDs are strings of digits, ``sub``
in its default format, ``nbf = iat - 300``, a 300 s life). The issuer is
``url`` itself, so a broker under test must list it as a (loopback) issuer.

Usage::

    with FakeOidcIssuer() as issuer:
        env = {"ACTIONS_ID_TOKEN_REQUEST_URL": issuer.token_request_url,
               "ACTIONS_ID_TOKEN_REQUEST_TOKEN": issuer.request_token}
        jwt = issuer.mint(audience="https://broker", environment="prod")
        issuer.fail_next("500")          # the next token request answers 500
        issuer.claims["ref"] = "refs/heads/dev"   # change defaults per test

``mint(**overrides)`` replaces a claim with a value, or removes it with None.

Every issuer of a process signs with one RSA key, :func:`shared_private_key`, made on
first use: an RSA-2048 key costs ~0.1 s of CPU to generate, and the tests start dozens
of issuers. Issuers still differ by URL and ``kid``; a test that needs a key of its own
(a rotation, a second issuer whose key must differ) passes ``private_key=`` or sets
``issuer.private_key``.
"""

from __future__ import annotations

import functools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from support.loopback import LoopbackServer

FailureMode = Literal["500", "slow", "malformed", "no-value"]
FAILURE_MODES: tuple[FailureMode, ...] = ("500", "slow", "malformed", "no-value")

#: GitHub's documented claims for a push to main, in GitHub's shapes. ``iss``,
#: ``aud``, ``jti``, ``iat``, ``nbf`` and ``exp`` are filled in at mint time.
DEFAULT_CLAIMS: dict[str, Any] = {
    "sub": "repo:octo-org/octo-repo:ref:refs/heads/main",
    "ref": "refs/heads/main",
    "ref_type": "branch",
    "ref_protected": "true",
    "sha": "2f1e6f0a8b1c4d5e6f708192a3b4c5d6e7f80912",
    "repository": "octo-org/octo-repo",
    "repository_id": "690001234",
    "repository_owner": "octo-org",
    "repository_owner_id": "90001234",
    "repository_visibility": "private",
    "actor": "octocat",
    "actor_id": "583231",
    "workflow": "CI",
    "workflow_ref": "octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main",
    "workflow_sha": "2f1e6f0a8b1c4d5e6f708192a3b4c5d6e7f80912",
    "job_workflow_ref": "octo-org/octo-repo/.github/workflows/ci.yml@refs/heads/main",
    "job_workflow_sha": "2f1e6f0a8b1c4d5e6f708192a3b4c5d6e7f80912",
    "event_name": "push",
    "head_ref": "",
    "base_ref": "",
    "run_id": "12345678901",
    "run_number": "42",
    "run_attempt": "1",
    "check_run_id": "33445566778",
    "runner_environment": "github-hosted",
    "enterprise": "",
    "enterprise_id": "",
}

TOKEN_LIFETIME = 300
NBF_SKEW = 300


@functools.cache
def shared_private_key() -> rsa.RSAPrivateKey:
    """The RSA-2048 key every issuer of this process signs with unless given its own."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class FakeOidcIssuer(LoopbackServer):
    """A started-on-demand loopback issuer. Use it as a context manager."""

    host: str = "127.0.0.1"
    port: int = 0
    lifetime: int = TOKEN_LIFETIME
    slow_seconds: float = 5.0
    claims: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_CLAIMS))
    request_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    kid: str = field(default_factory=lambda: uuid.uuid4().hex)
    requests: list[tuple[str, str]] = field(default_factory=list)
    #: every ID token handed out at /token, so tests can prove none leaked
    issued: list[str] = field(default_factory=list)
    private_key: rsa.RSAPrivateKey = field(default_factory=shared_private_key, repr=False)

    def __post_init__(self) -> None:
        self._failures: list[FailureMode] = []
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    # -- what tests read -------------------------------------------------

    @property
    def token_request_url(self) -> str:
        """What the runner puts in ``ACTIONS_ID_TOKEN_REQUEST_URL``."""
        return f"{self.url}/token?api-version=2.0"

    def runner_env(self) -> dict[str, str]:
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.token_request_url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def jwks(self) -> dict[str, Any]:
        public = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        public.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [public]}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/.well-known/jwks",
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "claims_supported": sorted({*self.claims, "iss", "aud", "exp", "iat", "nbf", "jti"}),
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid"],
        }

    def mint(self, audience: str = "jobtoken", **overrides: Any) -> str:
        """Sign a GitHub-shaped ID token; an override of None removes the claim."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "jti": str(uuid.uuid4()),
            **self.claims,
            "aud": audience,
            "iss": self.url,
            "iat": now,
            "nbf": now - NBF_SKEW,
            "exp": now + self.lifetime,
        }
        for name, value in overrides.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        headers = {"kid": self.kid, "typ": "JWT"}
        return jwt.encode(payload, self.private_key, algorithm="RS256", headers=headers)

    def fail_next(self, mode: FailureMode, count: int = 1) -> None:
        """Make the next ``count`` token requests fail in the given way."""
        if mode not in FAILURE_MODES:
            raise ValueError(f"unknown failure mode {mode!r}; use one of {FAILURE_MODES}")
        with self._lock:
            self._failures.extend([mode] * count)

    def _next_failure(self) -> FailureMode | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None


def _handler_for(issuer: FakeOidcIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fake-oidc-issuer"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``issuer.requests`` instead."""

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            issuer.requests.append(("GET", parts.path))
            if parts.path == "/.well-known/openid-configuration":
                self._json(200, issuer.discovery())
            elif parts.path == "/.well-known/jwks":
                self._json(200, issuer.jwks())
            elif parts.path == "/token":
                self._token(parse_qs(parts.query))
            else:
                self._json(404, {"message": "Not Found"})

        def _token(self, query: Mapping[str, list[str]]) -> None:
            expected = f"bearer {issuer.request_token}".encode()
            given = self.headers.get("Authorization", "").encode()
            if not secrets.compare_digest(given.lower(), expected.lower()):
                self._json(401, {"message": "Unauthorized: bad or missing bearer token"})
                return
            failure = issuer._next_failure()
            if failure == "500":
                self._json(500, {"message": "Internal Server Error"})
                return
            if failure == "slow":
                time.sleep(issuer.slow_seconds)
            if failure == "malformed":
                self._send(200, b"<html>not json", "text/html")
                return
            if failure == "no-value":
                self._json(200, {"count": 0})
                return
            audience = query.get("audience", [None])[0]
            if audience is None:
                # GitHub's default audience is the repository owner's URL.
                audience = f"https://github.com/{issuer.claims.get('repository_owner', '')}"
            token = issuer.mint(audience=audience)
            issuer.issued.append(token)
            self._json(200, {"value": token})

        def _json(self, status: int, body: object) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
