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

Where the broker's access to the upstream comes from is the connector's ``credential``,
a choice separate from how the job receives access:

- ``static`` (default): one long-lived key, stored sealed (``connector set``), or in a
  file sealed to the broker's seal key (``credential_sealed_file``, for GitOps);
- ``oauth2-refresh``: an OAuth refresh token got by ``jobtoken broker connect`` (the
  authorization-code flow), refreshed once for every worker and broker
  (``upstream/grants.py``); the client secret is stored sealed;
- ``oauth2-client-credentials``: the client secret, traded for access tokens;
- ``github-app``: the app's private key; every exchange mints a GitHub installation
  token limited to the job's repository and the permissions its scopes name.

Proxy scopes: each ``routes`` entry maps a method and a path pattern to the scope a
token needs for it. In a pattern, ``*`` matches one path segment and a final ``**``
matches any number of segments; the first matching route decides; a request no route
matches is refused.

Public API: :class:`Connector`, :class:`Route`, :class:`OAuthSettings`,
:class:`GitHubAppSettings`, :data:`KINDS`, :data:`CREDENTIALS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from jobtoken.wire.grammar import SCOPE, check_connector_name, parse_ascii_int

__all__ = [
    "CREDENTIALS",
    "KINDS",
    "REDIRECT_HOSTS",
    "Connector",
    "GitHubAppSettings",
    "OAuthSettings",
    "Route",
]

KINDS = ("minted", "passthrough")
CREDENTIALS = ("static", "oauth2-refresh", "oauth2-client-credentials", "github-app")
OAUTH_CREDENTIALS = ("oauth2-refresh", "oauth2-client-credentials")
CLIENT_AUTH = ("client_secret_post", "client_secret_basic")
#: the hosts a loopback redirect URI may name (RFC 8252 §7.3; localhost: §8.3 allows it)
REDIRECT_HOSTS = ("127.0.0.1", "localhost")
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


def require_endpoint(url: str, what: str) -> None:
    """An https URL (http only on loopback), with no credentials or fragment."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError(f"{what} must be an https:// URL (http only on loopback)")
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        raise ValueError(f"{what} must be an absolute URL without credentials or fragment")


@dataclass(frozen=True)
class OAuthSettings:
    """How the broker, as an OAuth client, talks to the provider (RFC 6749)."""

    client_id: str
    token_url: str
    authorize_url: str = ""
    #: RFC 7009 revocation endpoint; "" when the provider has none
    revoke_url: str = ""
    #: the scopes asked of the provider at connect time (the provider's names)
    scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    client_auth: str = "client_secret_post"
    #: refresh this long before the access token expires (at most half its lifetime)
    refresh_margin_seconds: int = 60
    #: where the access token sits in the token response (Slack nests user tokens)
    access_token_path: tuple[str, ...] = ("access_token",)
    #: the token-response field that gives the API's base URL (Salesforce: instance_url)
    base_url_field: str = ""
    #: extra query parameters of the authorization request
    authorize_params: tuple[tuple[str, str], ...] = ()
    #: the token request's body: "form" (RFC 6749) or "json" (Notion)
    token_body: str = "form"  # noqa: S105 (a body format, not a secret)
    #: lifetime assumed when the token response gives no ``expires_in``
    default_expires_in: int = 3600
    #: the host of ``connect``'s loopback redirect URI: "127.0.0.1" (RFC 8252 §7.3) or
    #: "localhost", for providers that take plain http for that name only (HubSpot);
    #: the listener binds 127.0.0.1 either way
    redirect_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if not self.client_id or len(self.client_id) > 512:
            raise ValueError("client_id must be set (at most 512 characters)")
        require_endpoint(self.token_url, "token_url")
        for name in ("authorize_url", "revoke_url"):
            if getattr(self, name):
                require_endpoint(getattr(self, name), name)
        if self.scope_separator not in (" ", ","):
            raise ValueError("scope_separator must be ' ' or ','")
        if self.client_auth not in CLIENT_AUTH:
            raise ValueError(f"client_auth must be one of {', '.join(CLIENT_AUTH)}")
        if self.token_body not in ("form", "json"):
            raise ValueError("token_body must be 'form' or 'json'")
        if self.redirect_host not in REDIRECT_HOSTS:
            raise ValueError(f"redirect_host must be one of {', '.join(REDIRECT_HOSTS)}")
        if not 0 <= self.refresh_margin_seconds <= 3600:
            raise ValueError("refresh_margin_seconds must be between 0 and 3600")
        if not self.access_token_path or not all(self.access_token_path):
            raise ValueError("access_token_path must name at least one field")
        for scope in self.scopes:
            if not scope or any(c in scope for c in ' ,"\r\n'):
                raise ValueError(f"upstream scope {scope!r} must hold no space, comma or quote")


@dataclass(frozen=True)
class GitHubAppSettings:
    app_id: str
    api_url: str = "https://api.github.com"

    def __post_init__(self) -> None:
        if parse_ascii_int(self.app_id, 20) is None and not self.app_id.startswith("Iv"):
            raise ValueError("app_id must be the app's numeric id or its client id (Iv…)")
        require_endpoint(self.api_url, "api_url")


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
    credential: str = "static"
    oauth: OAuthSettings | None = None
    github_app: GitHubAppSettings | None = None
    #: static headers the proxy adds to every call (Notion-Version)
    headers: tuple[tuple[str, str], ...] = ()
    #: the credential in a file sealed to the broker's seal key (``jobtoken seal``),
    #: instead of one stored by ``connector set`` (``connectors/credentials.py``)
    credential_sealed_file: Path | None = None

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
        if self.credential not in CREDENTIALS:
            raise ValueError(f"credential must be one of {', '.join(CREDENTIALS)}")
        if (self.credential in OAUTH_CREDENTIALS) != (self.oauth is not None):
            raise ValueError(
                "an oauth2-* credential needs an [oauth] table (client_id, token_url, …), "
                "and only it"
            )
        if (self.credential == "github-app") != (self.github_app is not None):
            raise ValueError("credential 'github-app' needs a [github_app] table, and only it")
        if self.routes and not self.base_url and not self._base_url_from_grant:
            raise ValueError("routes need a base_url to proxy to")
        for header, value in self.headers:
            if not _HEADER.fullmatch(header) or not all(" " <= c <= "~" for c in value):
                raise ValueError(f"header {header!r} must be a header name with a printable value")
        if not _HEADER.fullmatch(self.auth_header):
            raise ValueError("auth_header must be a header name")
        if self.auth_scheme and not _HEADER.fullmatch(self.auth_scheme):
            raise ValueError("auth_scheme must be a single word such as Bearer, or empty")

    @property
    def _base_url_from_grant(self) -> bool:
        return self.oauth is not None and bool(self.oauth.base_url_field)

    @property
    def proxied(self) -> bool:
        return self.kind == "minted" and bool(self.base_url or self._base_url_from_grant)

    @property
    def needs_credential(self) -> bool:
        """Its tokens need an upstream credential (stored, or a sealed file): a
        passthrough, a ``base_url`` to proxy to, an OAuth or GitHub App credential. A
        minted connector an API verifies itself through the JWKS needs none."""
        return (
            self.kind == "passthrough"
            or bool(self.base_url)
            or self.credential != "static"
            or self.credential_sealed_file is not None
        )

    @property
    def per_job_upstream(self) -> bool:
        """Every exchange gets an upstream token of its own, revoked upstream with the
        job's where the upstream can: a GitHub App's installation tokens, and a
        client-credentials connector's passthrough leases (RFC 7009 ``revoke_url``)."""
        client_credentials = self.credential == "oauth2-client-credentials"
        return self.credential == "github-app" or (client_credentials and self.kind != "minted")

    @property
    def upstream_revocable(self) -> bool:
        """Its per-job upstream tokens can be revoked upstream."""
        if self.credential == "github-app":
            return True
        return self.per_job_upstream and self.oauth is not None and bool(self.oauth.revoke_url)

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
