"""A GitHub App client: the broker mints per-job installation tokens with it.

``GitHubApp(app_id, private_key_pem, api_url="https://api.github.com", timeout=10.0)``:

- :meth:`GitHubApp.app_jwt` signs the app's JWT (RS256, ``iat = now - 60``,
  ``exp = now + 540``, ``iss = app_id``): GitHub wants ``iat`` set back 60 s for
  clock drift and ``exp`` at most 10 minutes ahead
  (https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app).
- :meth:`GitHubApp.installation_id` asks ``GET /repos/{owner}/{repo}/installation``
  with that JWT (https://docs.github.com/en/rest/apps/apps#get-a-repository-installation-for-the-authenticated-app);
  answers are cached per repository for ``cache_ttl`` seconds, failures are not.
- :meth:`GitHubApp.create_installation_token` asks
  ``POST /app/installations/{id}/access_tokens`` with exactly
  ``{"repositories": [names], "permissions": {...}}``
  (https://docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app).
  Without either field GitHub grants every repository or every permission of the
  installation, so both must be non-empty. The answer is refused (``invalid_response``,
  and the token revoked upstream) when its permissions differ from those asked (the
  one extra tolerated is ``metadata: read``, which every installation token carries),
  its repositories differ, ``repository_selection`` is not ``selected``, or
  ``expires_at`` is not a future RFC 3339 UTC time.
- :meth:`GitHubApp.revoke_installation_token` sends ``DELETE /installation/token``
  authenticated by the token itself, and expects 204
  (https://docs.github.com/en/rest/apps/installations#revoke-an-installation-access-token).
- :func:`permissions_for_scopes` turns our scope names (``contents:read``,
  ``pull_requests:write``…) into GitHub's permissions object; the higher level wins.

Every request sends ``Accept: application/vnd.github+json`` and
``X-GitHub-Api-Version: 2022-11-28`` through the broker's one bounded synchronous
request (``bounded_http.request_bounded``, on a pooled ``requests.Session``): it follows
no redirect, ignores the environment (``trust_env = False``: no proxy, ``.netrc`` or CA
bundle variables), is cut at ``timeout`` per phase and ``2 * timeout`` in all, and reads
at most ``MAX_RESPONSE_BYTES``; JSON is parsed strictly (a repeated key is refused).
Every failure is a :class:`GitHubAppError` whose ``kind`` is ``unreachable`` (no
answer, a timeout, a 5xx), ``refused`` (a 4xx or another status than documented) or
``invalid_response``; its text names no token, key or JWT, and the private key is in
no ``repr``.

Public API: :class:`GitHubApp`, :class:`InstallationToken`, :class:`GitHubAppError`,
:func:`permissions_for_scopes`, :data:`PERMISSION_LEVELS`.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal
from urllib.parse import quote, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from jobtoken.broker.errors import UpstreamFailure
from jobtoken.broker.upstream.bounded_http import BoundedHttpError, request_bounded
from jobtoken.wire.strict_json import StrictJsonError, loads_strict

__all__ = [
    "PERMISSION_LEVELS",
    "GitHubApp",
    "GitHubAppError",
    "InstallationToken",
    "permissions_for_scopes",
]

API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"
JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 540
MAX_RESPONSE_BYTES = 1 << 20
#: repositories per token (GitHub allows 500; a job needs a few)
MAX_REPOSITORIES = 100
MAX_TOKEN_LENGTH = 4096

#: the repository permissions a scope may name, and the levels each one takes
#: (GitHub's ``app-permissions`` object; admin-level and organization permissions
#: are deliberately absent)
PERMISSION_LEVELS: Mapping[str, tuple[str, ...]] = {
    "actions": ("read", "write"),
    "checks": ("read", "write"),
    "contents": ("read", "write"),
    "deployments": ("read", "write"),
    "discussions": ("read", "write"),
    "environments": ("read", "write"),
    "issues": ("read", "write"),
    "metadata": ("read",),
    "packages": ("read", "write"),
    "pages": ("read", "write"),
    "pull_requests": ("read", "write"),
    "statuses": ("read", "write"),
    "workflows": ("write",),
}
_RANK = {"read": 1, "write": 2}
_IMPLIED = ("metadata", "read")

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}\Z")
_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}\Z")
_APP_ID = re.compile(r"[A-Za-z0-9.]{1,64}\Z")
_TOKEN = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_TOKEN_LENGTH}}}\Z")
_EXPIRES = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")
_SHOWN = re.compile(r"[a-z_]{1,40}:[a-z]{1,10}\Z")  # what an error may quote of an answer

Kind = Literal["unreachable", "refused", "invalid_response"]


class GitHubAppError(UpstreamFailure):
    """A GitHub API call failed; ``kind`` says how. The text names no secret."""

    kind: Kind

    def __init__(self, kind: Kind, text: str) -> None:
        super().__init__(kind, text)


@dataclass(frozen=True)
class InstallationToken:
    token: str
    #: Unix time, from the answer's ``expires_at``
    expires_at: int
    #: the permissions GitHub says it granted
    permissions: dict[str, str]
    #: the repository names, as asked
    repositories: tuple[str, ...]

    def __repr__(self) -> str:  # never show the token
        return (
            f"InstallationToken(expires_at={self.expires_at}, permissions={self.permissions!r}, "
            f"repositories={self.repositories!r})"
        )


def permissions_for_scopes(scopes: Iterable[str]) -> dict[str, str]:
    """``contents:read issues:write`` → ``{"contents": "read", "issues": "write"}``."""
    result: dict[str, str] = {}
    for scope in scopes:
        name, sep, level = scope.partition(":")
        levels = PERMISSION_LEVELS.get(name)
        if not sep or levels is None:
            raise ValueError(f"{scope!r} is not a GitHub App scope (known: {_known()})")
        if level not in levels:
            raise ValueError(f"{scope!r}: {name} takes {' or '.join(levels)}")
        if _RANK[level] > _RANK.get(result.get(name, ""), 0):
            result[name] = level
    return result


def _known() -> str:
    return ", ".join(f"{name}:{level}" for name, v in PERMISSION_LEVELS.items() for level in v)


class GitHubApp:
    def __init__(
        self,
        app_id: str,
        private_key_pem: bytes,
        api_url: str = "https://api.github.com",
        timeout: float = 10.0,
        *,
        cache_ttl: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not _APP_ID.match(app_id):
            raise ValueError("app_id must be the GitHub App's ID or client ID")
        parts = urlsplit(api_url)
        secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
        if not secure or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("api_url must be an https URL such as https://api.github.com")
        try:
            key = load_pem_private_key(private_key_pem, password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, RSAPrivateKey) or key.key_size < 2048:
            raise ValueError("the GitHub App private key is not an unencrypted PEM RSA key")
        self.app_id = app_id
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self.max_entries = max_entries
        self._key = key
        self._clock = clock
        self._session = requests.Session()
        self._session.trust_env = False  # no HTTP(S)_PROXY, .netrc or CA bundle from env
        self._lock = threading.Lock()
        self._installations: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def __repr__(self) -> str:  # never show the key
        return f"GitHubApp(app_id={self.app_id!r}, api_url={self.api_url!r})"

    def close(self) -> None:
        self._session.close()

    def app_jwt(self, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {
            "iat": issued - JWT_BACKDATE_SECONDS,
            "exp": issued + JWT_LIFETIME_SECONDS,
            "iss": self.app_id,
        }
        return jwt.encode(claims, self._key, algorithm="RS256")

    def installation_id(self, owner_repo: str) -> int:
        owner, _, name = owner_repo.partition("/")
        if not _OWNER.match(owner) or not _NAME.match(name) or name in (".", ".."):
            raise ValueError("the repository must be owner/name")
        key = owner_repo.lower()
        now = self._clock()
        with self._lock:
            cached = self._installations.get(key)
            if cached is not None and now - cached[0] < self.cache_ttl:
                self._installations.move_to_end(key)
                return cached[1]
        path = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}/installation"
        status, body = self._call("GET", path, self.app_jwt())
        if status == 404:
            raise GitHubAppError("refused", "the GitHub App is not installed on that repository")
        _expect(status, 200, "the installation look-up")
        found = _object(body).get("id")
        if not isinstance(found, int) or isinstance(found, bool) or found <= 0:
            raise GitHubAppError("invalid_response", "the installation has no numeric id")
        with self._lock:
            self._installations[key] = (now, found)
            self._installations.move_to_end(key)
            while len(self._installations) > self.max_entries:
                self._installations.popitem(last=False)
        return found

    def create_installation_token(
        self,
        installation_id: int,
        repositories: tuple[str, ...],
        permissions: Mapping[str, str],
    ) -> InstallationToken:
        if isinstance(installation_id, bool) or installation_id <= 0:
            raise ValueError("installation_id must be a positive integer")
        names = tuple(repositories)
        if not names or len(names) > MAX_REPOSITORIES:
            raise ValueError(f"a token names 1 to {MAX_REPOSITORIES} repositories")
        if any(not _NAME.match(n) or n in (".", "..") for n in names):
            raise ValueError("repositories are names without the owner, such as app")
        if len({n.lower() for n in names}) != len(names):
            raise ValueError("a repository is named twice")
        if not permissions:
            raise ValueError("a token needs at least one permission")
        for name, level in permissions.items():
            if level not in PERMISSION_LEVELS.get(name, ()):
                raise ValueError(f"{name}:{level} is not a GitHub App permission we grant")
        asked = dict(permissions)
        payload = json.dumps({"repositories": list(names), "permissions": asked}).encode()
        status, body = self._call(
            "POST", f"/app/installations/{installation_id}/access_tokens", self.app_jwt(), payload
        )
        _expect(status, 201, "the token request")
        answer = _object(body)
        token = answer.get("token")
        if not isinstance(token, str) or not _TOKEN.match(token):
            raise GitHubAppError("invalid_response", "the answer has no usable token")
        try:
            expires_at = _expiry(answer.get("expires_at"))
            granted = _granted_permissions(answer.get("permissions"), asked)
            _check_repositories(answer, names)
        except GitHubAppError:
            with contextlib.suppress(GitHubAppError):
                self.revoke_installation_token(token)
            raise
        return InstallationToken(token, expires_at, granted, names)

    def revoke_installation_token(self, token: str) -> None:
        if not _TOKEN.match(token):
            raise ValueError("that is not an installation token")
        status, _ = self._call("DELETE", "/installation/token", token)
        _expect(status, 204, "the revocation")

    def _call(
        self, method: str, path: str, bearer: str, body: bytes | None = None
    ) -> tuple[int, bytes]:
        headers = {
            "Accept": ACCEPT,
            "X-GitHub-Api-Version": API_VERSION,
            "Authorization": f"Bearer {bearer}",
            "User-Agent": "jobtoken-broker",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = request_bounded(
                self._session,
                method,
                self.api_url + path,
                headers=headers,
                body=body,
                max_bytes=MAX_RESPONSE_BYTES,
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                total_seconds=2 * self.timeout,
            )
        except BoundedHttpError as exc:
            if exc.kind == "too_large":
                raise GitHubAppError(
                    "invalid_response", f"the answer is over {MAX_RESPONSE_BYTES} bytes"
                ) from None
            if exc.kind == "too_slow":
                raise GitHubAppError("unreachable", "the GitHub API took too long") from None
            raise GitHubAppError("unreachable", f"the GitHub API {exc.detail}") from None
        if response.status >= 500:
            raise GitHubAppError("unreachable", f"the GitHub API answered HTTP {response.status}")
        return response.status, response.body


def _expect(status: int, wanted: int, what: str) -> None:
    if status != wanted:
        raise GitHubAppError("refused", f"the GitHub API answered {what} with HTTP {status}")


def _object(body: bytes) -> dict[str, object]:
    try:
        value = loads_strict(body)
    except StrictJsonError as exc:
        raise GitHubAppError("invalid_response", f"the answer is not strict JSON: {exc}") from None
    if not isinstance(value, dict):
        raise GitHubAppError("invalid_response", "the answer is not a JSON object")
    return value


def _expiry(value: object) -> int:
    if not isinstance(value, str) or not _EXPIRES.match(value):
        raise GitHubAppError("invalid_response", "expires_at is not an RFC 3339 UTC time")
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise GitHubAppError("invalid_response", "expires_at is not a valid time") from None
    expires_at = int(moment.timestamp())
    if expires_at <= time.time():
        raise GitHubAppError("invalid_response", "the token has already expired")
    return expires_at


def _granted_permissions(value: object, asked: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise GitHubAppError("invalid_response", "the answer's permissions are not an object")
    granted: dict[str, str] = dict(value)
    extra = {k: v for k, v in granted.items() if asked.get(k) != v and (k, v) != _IMPLIED}
    missing = sorted(k for k in asked if k not in granted)
    if extra or missing:
        shown = [f"{k}:{v}" if _SHOWN.match(f"{k}:{v}") else "?" for k, v in sorted(extra.items())]
        detail = ", ".join([*shown, *(f"no {k}" for k in missing)])
        raise GitHubAppError(
            "invalid_response", f"the granted permissions differ from those asked ({detail})"
        )
    return granted


def _check_repositories(answer: Mapping[str, object], names: tuple[str, ...]) -> None:
    if answer.get("repository_selection") != "selected":
        raise GitHubAppError(
            "invalid_response", "the token is not limited to selected repositories"
        )
    listed = answer.get("repositories")
    if not isinstance(listed, list) or len(listed) > MAX_REPOSITORIES:
        raise GitHubAppError("invalid_response", "the answer does not list the repositories")
    got = [r.get("name") if isinstance(r, dict) else None for r in listed]
    if not all(isinstance(n, str) for n in got):
        raise GitHubAppError("invalid_response", "a repository in the answer has no name")
    lowered = [str(n).lower() for n in got]
    if len(set(lowered)) != len(lowered) or set(lowered) != {n.lower() for n in names}:
        raise GitHubAppError("invalid_response", "the token's repositories differ from those asked")
