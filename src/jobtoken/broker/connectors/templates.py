"""Provider templates: the documented OAuth facts and proxy routes of well-known APIs.

A connector's config may say ``template = "hubspot"``; the config parser then fills every
value the operator left unset from :data:`TEMPLATES` (docs/connectors-templates.md). A
template holds public facts only (endpoint URLs, how the provider wants the client to
authenticate, where the token response keeps the access token, the headers its API
needs) and the proxy routes that map the provider's REST paths to OUR scope names. No
secret and no account-specific value (client id, tenant host) ever lives here.

Each fact carries, in :mod:`jobtoken.broker.connectors.template_catalog`, a comment naming the
provider page it comes from; ``ProviderTemplate.docs`` lists those pages.

Public API: :class:`ProviderTemplate`, :data:`TEMPLATES`, :func:`template`,
:data:`CREDENTIALS`, :data:`CLIENT_AUTH_METHODS`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

from jobtoken.broker.connectors.model import Route
from jobtoken.broker.connectors.template_catalog import catalog
from jobtoken.wire.grammar import check_connector_name

__all__ = ["CLIENT_AUTH_METHODS", "CREDENTIALS", "TEMPLATES", "ProviderTemplate", "template"]

CREDENTIALS = ("oauth2-refresh", "github-app")
CLIENT_AUTH_METHODS = ("client_secret_post", "client_secret_basic")
SCOPE_SEPARATORS = (" ", ",")
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}\Z")
_FIELD = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
#: headers the proxy owns: a template may not set them
_RESERVED_HEADERS = frozenset({"authorization", "host", "content-length", "cookie"})
#: authorize parameters the OAuth flow itself sets: a template may not override them
_RESERVED_PARAMS = frozenset(
    {"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge"}
    | {"code_challenge_method"}
)


def _https_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return "is not an https URL with a host"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "has a query or a fragment"
    if parts.username is not None or parts.password is not None:
        return "carries credentials"
    return None


@dataclass(frozen=True)
class ProviderTemplate:
    name: str
    credential: str
    authorize_url: str
    token_url: str
    #: "" when the provider has no RFC 7009-style revocation endpoint
    revoke_url: str
    scope_separator: str
    client_auth: str
    #: proxy base URL; "" when it comes from the token response (``base_url_field``)
    base_url: str
    base_url_field: str
    access_token_path: tuple[str, ...]
    authorize_params: Mapping[str, str]
    upstream_scopes: tuple[str, ...]
    headers: Mapping[str, str]
    routes: tuple[Route, ...]
    docs: tuple[str, ...] = field(default=())
    #: the token request's body: "form" (RFC 6749) or "json" (Notion)
    token_body: str = "form"  # noqa: S105 (a body format)

    def __post_init__(self) -> None:
        problem = check_connector_name(self.name)
        if problem is not None:
            raise ValueError(f"template name: {problem}")
        where = f"template {self.name!r}"
        if self.credential not in CREDENTIALS:
            raise ValueError(f"{where}: credential must be one of {', '.join(CREDENTIALS)}")
        oauth = self.credential == "oauth2-refresh"
        for attr in ("authorize_url", "token_url", "revoke_url", "base_url"):
            url = getattr(self, attr)
            if not url:
                if oauth and attr in ("authorize_url", "token_url"):
                    raise ValueError(f"{where}: an OAuth template needs {attr}")
                continue
            problem = _https_problem(url)
            if problem is not None:
                raise ValueError(f"{where}: {attr} {problem}")
        if bool(self.base_url) == bool(self.base_url_field):
            raise ValueError(f"{where}: set exactly one of base_url and base_url_field")
        if self.base_url_field and not _FIELD.match(self.base_url_field):
            raise ValueError(f"{where}: base_url_field is not a plain field name")
        if self.token_body not in ("form", "json"):
            raise ValueError(f"{where}: token_body must be 'form' or 'json'")
        if self.scope_separator not in SCOPE_SEPARATORS:
            raise ValueError(f"{where}: scope_separator must be a space or a comma")
        if self.client_auth not in CLIENT_AUTH_METHODS:
            methods = ", ".join(CLIENT_AUTH_METHODS)
            raise ValueError(f"{where}: client_auth must be one of {methods}")
        if not self.access_token_path or not all(
            _FIELD.match(part) for part in self.access_token_path
        ):
            raise ValueError(f"{where}: access_token_path must name one or more fields")
        for key in self.authorize_params:
            if not _FIELD.match(key) or key in _RESERVED_PARAMS:
                raise ValueError(f"{where}: authorize parameter {key!r} may not be set")
        for name, value in self.headers.items():
            if not _HEADER_NAME.match(name) or name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"{where}: header {name!r} may not be set")
            if not value.isprintable() or not value.isascii():
                raise ValueError(f"{where}: header {name!r} has a non-printable value")
        for scope in self.upstream_scopes:
            if not scope or self.scope_separator in scope or " " in scope:
                raise ValueError(f"{where}: upstream scope {scope!r} holds a separator")
        if not self.routes:
            raise ValueError(f"{where}: a template needs at least one proxy route")
        for url in self.docs:
            if urlsplit(url).scheme != "https":
                raise ValueError(f"{where}: documentation page {url!r} is not https")
        # frozen: copy the mappings into read-only views so no caller can change a template
        object.__setattr__(self, "authorize_params", MappingProxyType(dict(self.authorize_params)))
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    def scopes(self) -> tuple[str, ...]:
        """Our scope names, from the routes, each once, in route order."""
        return tuple(dict.fromkeys(route.scope for route in self.routes))


TEMPLATES: Mapping[str, ProviderTemplate] = MappingProxyType(
    {t.name: t for t in catalog(ProviderTemplate)}
)


def template(name: str) -> ProviderTemplate:
    """The template called `name`; ValueError naming the known ones otherwise."""
    try:
        return TEMPLATES[name]
    except KeyError:
        known = ", ".join(sorted(TEMPLATES))
        raise ValueError(f"unknown provider template {name!r}; known: {known}") from None
