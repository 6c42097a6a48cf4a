"""Connectors: the upstream APIs the broker hands out access to.

A connector is configured in the broker's config file (``[connectors.NAME]``); its
upstream credential is stored sealed in the store by ``jobtoken broker connector set``.
Two kinds:

- ``minted`` (default, recommended): the job gets a broker-signed JWT bound to the job,
  never the upstream credential. It calls the upstream API through
  ``/proxy/NAME/<path>``, where the broker checks the token and injects the credential,
  or presents the JWT to an API that verifies it through the broker's JWKS.
- ``passthrough`` (the weakest mode): the job gets the stored upstream credential
  itself, under a broker lease. Revoking the lease, or the job ending, cannot take the
  credential back from a job that copied it; use it only for APIs that cannot be
  proxied, and only with ``allow_passthrough = true`` in the connector's config.

Proxy scopes: each ``routes`` entry maps a method and a path pattern to the scope a
token needs for it. In a pattern, ``*`` matches one path segment and a final ``**``
matches any number of segments; the first matching route decides; a request no route
matches is refused.

Public API: :class:`Connector`, :class:`Route`, :data:`KINDS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from jobtoken.wire.grammar import SCOPE, check_connector_name

__all__ = ["KINDS", "Connector", "Route"]

KINDS = ("minted", "passthrough")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "*")
_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")
_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()+,;=:@-]+")
_QUERY_NAME = re.compile(r"[A-Za-z0-9_.\[\]-]{1,64}")
#: parameters some frameworks read as the request method: never forwarded
_METHOD_OVERRIDES = frozenset({"_method", "method", "x-http-method-override", "_httpmethod"})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    scope: str
    #: query parameter names the proxy forwards on this route; any other is refused
    query: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}")
        if not self.path.startswith("/"):
            raise ValueError("path must start with '/'")
        parts = self.path.strip("/").split("/") if self.path != "/" else []
        for i, part in enumerate(parts):
            if part == "**" and i != len(parts) - 1:
                raise ValueError("'**' may only end a path pattern")
            plain = _SEGMENT.fullmatch(part) and part not in (".", "..")
            if part not in ("*", "**") and not plain:
                raise ValueError(f"path segment {part!r} is not a plain segment, '*' or '**'")
        if not SCOPE.match(self.scope):
            raise ValueError("scope must be a single RFC 6749 scope token")
        for name in self.query:
            if not _QUERY_NAME.fullmatch(name) or name.lower() in _METHOD_OVERRIDES:
                raise ValueError(f"query parameter {name!r} may not be forwarded")

    def matches(self, method: str, segments: tuple[str, ...]) -> bool:
        if self.method not in ("*", method):
            return False
        pattern = self.path.strip("/").split("/") if self.path != "/" else []
        for i, part in enumerate(pattern):
            if part == "**":
                return True
            if i >= len(segments) or (part != "*" and part != segments[i]):
                return False
        return len(pattern) == len(segments)


#: Default ``max_ttl_seconds`` of a minted connector without ``base_url``: its tokens are
#: verified offline (JWKS) by the API, which cannot learn of a revocation, so only the
#: lifetime bounds them after the job ends (docs/security.md). Proxied connectors keep 900.
OFFLINE_MINTED_MAX_TTL = 300


@dataclass(frozen=True)
class Connector:
    name: str
    kind: str = "minted"
    max_ttl: int = 900
    scopes: tuple[str, ...] = ()
    base_url: str = ""
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    allow_passthrough: bool = False
    routes: tuple[Route, ...] = ()

    def __post_init__(self) -> None:
        problem = check_connector_name(self.name)
        if problem is not None:
            raise ValueError(problem)
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if self.kind == "passthrough" and not self.allow_passthrough:
            raise ValueError(
                "kind 'passthrough' hands the upstream credential itself to the job; set "
                "allow_passthrough = true to accept that, or use kind 'minted'"
            )
        if self.max_ttl < 1:
            raise ValueError("max_ttl_seconds must be positive")
        for scope in self.scopes:
            if not SCOPE.match(scope):
                raise ValueError(f"scope {scope!r} is not an RFC 6749 scope token")
        if self.base_url:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ValueError("base_url must be an absolute http(s) URL")
            if parts.query or parts.fragment or parts.username or parts.password:
                raise ValueError("base_url may not hold a query, fragment or credentials")
        if self.routes and not self.base_url:
            raise ValueError("routes need a base_url to proxy to")
        if not _HEADER.fullmatch(self.auth_header):
            raise ValueError("auth_header must be a header name")
        if self.auth_scheme and not _HEADER.fullmatch(self.auth_scheme):
            raise ValueError("auth_scheme must be a single word such as Bearer, or empty")

    @property
    def proxied(self) -> bool:
        return self.kind == "minted" and bool(self.base_url)

    def route_for(self, method: str, segments: tuple[str, ...]) -> Route | None:
        """The first route that allows a proxied request, or None."""
        return next((r for r in self.routes if r.matches(method, segments)), None)

    def scope_for(self, method: str, segments: tuple[str, ...]) -> str | None:
        """The scope a proxied request needs, or None when no route allows it."""
        route = self.route_for(method, segments)
        return None if route is None else route.scope

    def credential_header(self, credential: str) -> tuple[str, str]:
        value = f"{self.auth_scheme} {credential}" if self.auth_scheme else credential
        return self.auth_header, value
