"""``[connectors.NAME]``: a connector, its proxy routes, and where its upstream
access comes from (``credential``, with an ``[oauth]`` or ``[github_app]`` table; the
credential itself is stored by ``connector set``, or is the file named by
``credential_sealed_file``, relative to the config file).

``template = "hubspot"`` (``connectors/templates.toml``) fills every value the table
does not set: the provider's documented endpoints, scope separator and response
quirks, the API's base URL and proxy routes, and the scopes those routes name. A
value written in the table always wins; ``routes`` written in the table replace the
template's routes entirely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobtoken.broker.config.toml_table import Table, checked
from jobtoken.broker.connectors.model import (
    CREDENTIALS,
    KINDS,
    OFFLINE_MINTED_MAX_TTL,
    REDIRECT_HOSTS,
    Connector,
    GitHubAppSettings,
    OAuthSettings,
    Route,
)

if TYPE_CHECKING:
    from jobtoken.broker.connectors.templates import ProviderTemplate

__all__ = ["connectors_of"]


def connectors_of(t: Table) -> dict[str, Connector]:
    out: dict[str, Connector] = {}
    for name in t.names():
        c = t.table(name)
        out[name] = checked(c, lambda c, name=name: _connector(c, name))  # type: ignore[misc]
    return out


def _route(r: Table) -> Route:
    return Route(
        r.text("method", "GET"), r.text("path", ""), r.text("scope", ""), r.strings("query", ())
    )


def _template(c: Table) -> ProviderTemplate | None:
    name = c.text("template", "")
    if not name:
        return None
    from jobtoken.broker.connectors.templates import template

    return template(name)


def _connector(c: Table, name: str) -> Connector:
    default = Connector(name="default")
    tpl = _template(c)
    routes = tuple(checked(r, _route) for r in c.tables("routes"))
    if not routes and tpl is not None:
        routes = tpl.routes
    credential = c.choice("credential", tpl.credential if tpl else "static", CREDENTIALS)
    kind = c.choice("kind", default.kind, KINDS)
    base_url = c.text("base_url", tpl.base_url if tpl else "").rstrip("/")
    scopes = c.strings("scopes", tpl.scopes() if tpl else ())
    oauth = _oauth(c.table("oauth"), tpl, scopes) if credential.startswith("oauth2-") else None
    github_app = _github_app(c.table("github_app"), tpl) if credential == "github-app" else None
    # a minted connector with no API to proxy to: only the TTL bounds it (docs/security.md)
    offline = kind == "minted" and not base_url and not (oauth and oauth.base_url_field)
    default_ttl = OFFLINE_MINTED_MAX_TTL if offline else default.max_ttl
    headers = c.table("headers")
    header_pairs = tuple((h, headers.text(h, "")) for h in headers.names())
    return Connector(
        name=name,
        kind=kind,
        max_ttl=c.integer("max_ttl_seconds", default_ttl, 60, 24 * 3600),
        scopes=scopes,
        base_url=base_url,
        auth_header=c.text("auth_header", default.auth_header),
        auth_scheme=c.text("auth_scheme", default.auth_scheme),
        allow_passthrough=c.flag("allow_passthrough", False),
        routes=routes,
        credential=credential,
        oauth=oauth,
        github_app=github_app,
        headers=header_pairs or (tuple(tpl.headers.items()) if tpl else ()),
        credential_sealed_file=c.path("credential_sealed_file", None),
    )


def _asked(tpl: ProviderTemplate | None, declared: tuple[str, ...]) -> tuple[str, ...]:
    """The provider scopes ``connect`` asks for when ``[oauth] scopes`` is not set: with a
    template whose scope names are the provider's own (HubSpot), exactly those of them the
    connector declares; otherwise (or when it declares none of them) the template's."""
    if tpl is None:
        return ()
    if set(tpl.upstream_scopes) != set(tpl.scopes()):
        return tpl.upstream_scopes
    return tuple(s for s in tpl.upstream_scopes if s in declared) or tpl.upstream_scopes


def _oauth(o: Table, tpl: ProviderTemplate | None, declared: tuple[str, ...]) -> OAuthSettings:
    d = OAuthSettings(client_id="default", token_url="https://default.invalid/")  # noqa: S106
    params = o.table("authorize_params")
    pairs = tuple((k, params.text(k, "")) for k in params.names())
    return checked(
        o,
        lambda o: OAuthSettings(
            client_id=o.text("client_id", ""),
            token_url=o.text("token_url", tpl.token_url if tpl else ""),
            authorize_url=o.text("authorize_url", tpl.authorize_url if tpl else ""),
            revoke_url=o.text("revoke_url", tpl.revoke_url if tpl else ""),
            scopes=o.strings("scopes", _asked(tpl, declared)),
            scope_separator=o.text(
                "scope_separator", tpl.scope_separator if tpl else d.scope_separator
            ),
            client_auth=o.text("client_auth", tpl.client_auth if tpl else d.client_auth),
            refresh_margin_seconds=o.integer(
                "refresh_margin_seconds", d.refresh_margin_seconds, 0, 3600
            ),
            access_token_path=o.strings(
                "access_token_path", tpl.access_token_path if tpl else d.access_token_path
            ),
            base_url_field=o.text("base_url_field", tpl.base_url_field if tpl else ""),
            authorize_params=pairs or (tuple(tpl.authorize_params.items()) if tpl else ()),
            token_body=o.choice(
                "token_body", tpl.token_body if tpl else d.token_body, ("form", "json")
            ),
            default_expires_in=o.integer(
                "default_expires_in", d.default_expires_in, 60, 366 * 24 * 3600
            ),
            redirect_host=o.choice(
                "redirect_host", tpl.redirect_host if tpl else d.redirect_host, REDIRECT_HOSTS
            ),
        ),
    )


def _github_app(g: Table, tpl: ProviderTemplate | None) -> GitHubAppSettings:
    api_url = tpl.base_url if tpl and tpl.base_url else GitHubAppSettings("1").api_url
    return checked(
        g,
        lambda g: GitHubAppSettings(
            app_id=g.text("app_id", ""), api_url=g.text("api_url", api_url).rstrip("/")
        ),
    )
