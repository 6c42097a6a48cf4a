"""Provider templates: the documented OAuth facts and proxy routes of well-known APIs.

A connector's config may say ``template = "hubspot"``; the config parser then fills every
value the operator left unset from :data:`TEMPLATES` (docs/connectors-templates.md). A
template holds public facts only (endpoint URLs, how the provider wants the client to
authenticate, where the token response keeps the access token, the headers its API
needs) and the proxy routes that map the provider's REST paths to OUR scope names. No
secret and no account-specific value (client id, tenant host) ever lives here.

The templates are data: ``templates.toml`` beside this module, shipped in the wheel, is
read once, strictly, when this module is first imported (:func:`load_catalogue`). Each
fact there names the provider pages it comes from (``[NAME.sources]``), or says why no
page of the provider confirms it (``[NAME.unconfirmed]``); ``ProviderTemplate.docs``
lists those pages.

Public API: :class:`ProviderTemplate`, :data:`TEMPLATES`, :func:`template`,
:func:`load_catalogue`, :data:`FACTS`, :data:`CREDENTIALS`, :data:`CLIENT_AUTH_METHODS`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from types import MappingProxyType
from urllib.parse import urlsplit

from jobtoken.broker.connectors.model import REDIRECT_HOSTS, OAuthSettings, Route
from jobtoken.broker.ops.strict_toml import StrictTable, checked, tomllib
from jobtoken.wire.grammar import check_connector_name

__all__ = [
    "CLIENT_AUTH_METHODS",
    "CREDENTIALS",
    "FACTS",
    "TEMPLATES",
    "ProviderTemplate",
    "load_catalogue",
    "template",
]

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
    #: the host of ``connect``'s loopback redirect URI the provider accepts over http
    redirect_host: str = "127.0.0.1"

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
        if self.redirect_host not in REDIRECT_HOSTS:
            raise ValueError(f"{where}: redirect_host must be one of {', '.join(REDIRECT_HOSTS)}")
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


#: what a template states: every field but its name and its pages, each with its sources
FACTS = tuple(f.name for f in fields(ProviderTemplate) if f.name not in ("name", "docs"))
#: a fact the catalogue leaves out takes the connector's own default (``OAuthSettings``)
_CONNECTOR = OAuthSettings(client_id="default", token_url="https://default.invalid/")  # noqa: S106
CATALOGUE = "templates.toml"


def load_catalogue(text: str) -> dict[str, ProviderTemplate]:
    """Every template of a catalogue (``templates.toml``'s format), read strictly.

    ValueError naming the table and key at fault: an unknown key or a value of the wrong
    type, a value :class:`ProviderTemplate` or :class:`Route` refuses, a fact written
    with neither a source nor a reason it is unconfirmed, a source naming no page of
    ``[NAME.docs]``, or a page no fact cites.
    """
    root = StrictTable(tomllib.loads(text), "")
    return {
        name: checked(root.table(name), lambda t, name=name: _template(t, name))  # type: ignore[misc]
        for name in root.names()
    }


def _template(t: StrictTable, name: str) -> ProviderTemplate:
    docs = t.table("docs")
    pages = {key: docs.text(key, "") for key in docs.names()}
    built = ProviderTemplate(
        name=name,
        credential=t.text("credential", ""),
        authorize_url=t.text("authorize_url", ""),
        token_url=t.text("token_url", ""),
        revoke_url=t.text("revoke_url", ""),
        scope_separator=t.text("scope_separator", _CONNECTOR.scope_separator),
        client_auth=t.text("client_auth", _CONNECTOR.client_auth),
        base_url=t.text("base_url", ""),
        base_url_field=t.text("base_url_field", ""),
        access_token_path=t.strings("access_token_path", _CONNECTOR.access_token_path),
        authorize_params=_texts(t.table("authorize_params")),
        upstream_scopes=t.strings("upstream_scopes", ()),
        headers=_texts(t.table("headers")),
        routes=tuple(checked(r, _route) for r in t.tables("routes")),
        docs=tuple(pages.values()),
        token_body=t.text("token_body", _CONNECTOR.token_body),
        redirect_host=t.text("redirect_host", _CONNECTOR.redirect_host),
    )
    _check_sources(t, [fact for fact in t.given() if fact in FACTS], pages)
    return built


def _route(r: StrictTable) -> Route:
    # the keys and defaults of a [[connectors.NAME.routes]] entry (config/connector_section.py)
    return Route(
        r.text("method", "GET"), r.text("path", ""), r.text("scope", ""), r.strings("query", ())
    )


def _texts(t: StrictTable) -> dict[str, str]:
    return {key: t.text(key, "") for key in t.names()}


def _check_sources(t: StrictTable, written: list[str], pages: Mapping[str, str]) -> None:
    """Every fact written has pages, a reason it is unconfirmed, or both; every page backs one."""
    sources, unconfirmed = t.table("sources"), t.table("unconfirmed")
    cited: set[str] = set()
    for notes in (sources, unconfirmed):
        for fact in notes.names():
            if fact not in written:
                raise ValueError(f"[{notes.where}] {fact}: [{t.where}] states no such fact")
    for fact in sources.given():
        names = sources.strings(fact, ())
        if not names:
            raise ValueError(f"[{sources.where}] {fact}: name at least one page")
        for page in names:
            if page not in pages:
                raise ValueError(f"[{sources.where}] {fact}: no page {page!r} in [{t.where}.docs]")
        cited.update(names)
    for fact in unconfirmed.given():
        if not unconfirmed.text(fact, "").strip():
            raise ValueError(f"[{unconfirmed.where}] {fact}: say why it is unconfirmed")
    for fact in written:
        if fact not in sources.given() and fact not in unconfirmed.given():
            raise ValueError(
                f"[{t.where}] {fact} has no source: name its pages in [{sources.where}], "
                f"or say in [{unconfirmed.where}] why no page of the provider confirms it"
            )
    idle = [key for key in pages if key not in cited]
    if idle:
        raise ValueError(f"[{t.where}.docs] {idle[0]}: no fact cites this page")


def _shipped_catalogue() -> dict[str, ProviderTemplate]:
    text = (
        resources.files("jobtoken.broker.connectors")
        .joinpath(CATALOGUE)
        .read_text(encoding="utf-8")
    )
    try:
        return load_catalogue(text)
    except ValueError as exc:
        raise ValueError(f"the provider catalogue {CATALOGUE}: {exc}") from None


TEMPLATES: Mapping[str, ProviderTemplate] = MappingProxyType(_shipped_catalogue())


def template(name: str) -> ProviderTemplate:
    """The template called `name`; ValueError naming the known ones otherwise."""
    try:
        return TEMPLATES[name]
    except KeyError:
        known = ", ".join(sorted(TEMPLATES))
        raise ValueError(f"unknown provider template {name!r}; known: {known}") from None
