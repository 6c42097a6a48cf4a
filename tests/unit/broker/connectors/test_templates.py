from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

import pytest

from jobtoken.broker.connectors.model import Connector, Route
from jobtoken.broker.connectors.templates import TEMPLATES, ProviderTemplate, template
from jobtoken.wire.grammar import SCOPE

ALL = sorted(TEMPLATES)
EXPECTED = {"hubspot", "slack", "notion", "salesforce", "google", "github-app"}


def test_the_six_templates_are_there_under_their_names() -> None:
    assert set(TEMPLATES) == EXPECTED
    for name, tpl in TEMPLATES.items():
        assert tpl.name == name
        assert template(name) is tpl


def test_an_unknown_template_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="'nope'") as info:
        template("nope")
    for name in EXPECTED:
        assert name in str(info.value)


@pytest.mark.parametrize("name", ALL)
def test_every_url_is_https_without_query_or_fragment(name: str) -> None:
    tpl = TEMPLATES[name]
    urls = [tpl.authorize_url, tpl.token_url, tpl.revoke_url, tpl.base_url]
    for url in filter(None, urls):
        parts = urlsplit(url)
        assert parts.scheme == "https", url
        assert parts.hostname, url
        assert not parts.query, url
        assert not parts.fragment, url
        assert "?" not in url, url
        assert "#" not in url, url
    if tpl.credential == "oauth2-refresh":
        assert tpl.authorize_url
        assert tpl.token_url
    assert tpl.docs, "every template cites the pages its facts come from"
    assert all(doc.startswith("https://") for doc in tpl.docs)


@pytest.mark.parametrize("name", ALL)
def test_every_route_is_valid_and_its_scope_is_one_of_ours(name: str) -> None:
    tpl = TEMPLATES[name]
    assert tpl.routes
    scopes = tpl.scopes()
    assert len(scopes) == len(set(scopes))
    for route in tpl.routes:
        # constructing a Route validates it: rebuild each from its parts
        assert Route(route.method, route.path, route.scope, query=route.query) == route
        assert SCOPE.match(route.scope)
        assert route.scope in scopes
    # the routes also make a valid proxied connector
    base = tpl.base_url or "https://tenant.example.com"
    Connector(name=name, base_url=base, routes=tpl.routes, scopes=scopes)


@pytest.mark.parametrize("name", ALL)
def test_the_template_and_its_mappings_cannot_be_changed(name: str) -> None:
    tpl = TEMPLATES[name]
    with pytest.raises(dataclasses.FrozenInstanceError):
        tpl.token_url = "https://evil.example"  # type: ignore[misc]
    with pytest.raises(TypeError):
        tpl.headers["X"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        tpl.authorize_params["x"] = "y"  # type: ignore[index]


def test_hubspot_uses_the_current_token_endpoint_not_v1() -> None:
    tpl = template("hubspot")
    assert "/oauth/v1/" not in tpl.token_url
    assert tpl.token_url == "https://api.hubapi.com/oauth/2026-03/token"
    assert {"crm.objects.contacts.read", "crm.objects.contacts.write"} <= set(tpl.scopes())


def test_slack_quirks() -> None:
    tpl = template("slack")
    # the bot token is at the top level of oauth.v2.access (a user token would be under
    # authed_user), and Slack wants HTTP Basic client auth and comma-separated scopes
    assert tpl.access_token_path == ("access_token",)
    assert tpl.client_auth == "client_secret_basic"
    assert tpl.scope_separator == ","
    assert tpl.token_url == "https://slack.com/api/oauth.v2.access"
    assert {"chat:write", "channels:read"} <= set(tpl.scopes())


def test_salesforce_takes_its_api_base_from_the_token_response() -> None:
    tpl = template("salesforce")
    assert tpl.base_url == ""
    assert tpl.base_url_field == "instance_url"


def test_notion_sends_its_version_header_and_uses_basic_client_auth() -> None:
    tpl = template("notion")
    assert tpl.headers.get("Notion-Version")
    assert tpl.client_auth == "client_secret_basic"


def test_google_asks_for_offline_access_with_consent() -> None:
    tpl = template("google")
    assert tpl.authorize_params == {"access_type": "offline", "prompt": "consent"}


def test_github_app_maps_rest_paths_to_app_permissions() -> None:
    tpl = template("github-app")
    assert tpl.credential == "github-app"
    assert tpl.base_url == "https://api.github.com"
    assert set(tpl.scopes()) == {
        "contents:read",
        "contents:write",
        "issues:read",
        "issues:write",
        "pull_requests:read",
        "pull_requests:write",
        "metadata:read",
    }
    connector = Connector(name="gh", base_url=tpl.base_url, routes=tpl.routes)
    assert connector.scope_for("GET", ("repos", "o", "r", "contents", "a", "b.py")) == (
        "contents:read"
    )
    assert connector.scope_for("PUT", ("repos", "o", "r", "contents", "a.py")) == "contents:write"
    assert connector.scope_for("POST", ("repos", "o", "r", "issues")) == "issues:write"
    assert connector.scope_for("GET", ("repos", "o", "r", "pulls", "7")) == "pull_requests:read"
    assert connector.scope_for("GET", ("repos", "o", "r")) == "metadata:read"
    assert connector.scope_for("DELETE", ("repos", "o", "r")) is None


def test_hubspot_search_is_a_read_even_though_it_is_a_post() -> None:
    tpl = template("hubspot")
    connector = Connector(name="hs", base_url=tpl.base_url, routes=tpl.routes)
    search = ("crm", "v3", "objects", "contacts", "search")
    assert connector.scope_for("POST", search) == "crm.objects.contacts.read"
    assert connector.scope_for("POST", search[:-1]) == "crm.objects.contacts.write"


def _hubspot(**changes: object) -> ProviderTemplate:
    return dataclasses.replace(template("hubspot"), **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"token_url": "http://api.hubapi.com/oauth/2026-03/token"}, "token_url"),
        ({"token_url": "https://api.hubapi.com/oauth?x=1"}, "query"),
        ({"authorize_url": "https://app.hubspot.com/oauth/authorize#f"}, "fragment"),
        ({"token_url": ""}, "needs token_url"),
        ({"base_url_field": "instance_url"}, "exactly one"),
        ({"base_url": ""}, "exactly one"),
        ({"credential": "password"}, "credential"),
        ({"client_auth": "private_key_jwt"}, "client_auth"),
        ({"scope_separator": ";"}, "scope_separator"),
        ({"access_token_path": ()}, "access_token_path"),
        ({"authorize_params": {"redirect_uri": "https://evil.example"}}, "redirect_uri"),
        ({"headers": {"Authorization": "Bearer x"}}, "Authorization"),
        ({"headers": {"X-A": "a\nb"}}, "non-printable"),
        ({"routes": ()}, "route"),
        ({"name": "Bad Name"}, "connector name"),
        ({"docs": ("http://example.com",)}, "https"),
    ],
)
def test_a_template_with_a_bad_value_is_refused(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        _hubspot(**changes)
