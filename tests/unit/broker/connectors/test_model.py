from __future__ import annotations

import pytest

from jobtoken.broker.connectors.model import Connector, GitHubAppSettings, Route

ROUTES = (
    Route("GET", "/v1/contacts/**", "contacts.read"),
    Route("*", "/v1/contacts/*", "contacts.write"),
    Route("GET", "/v1/health", "health"),
)
CONNECTOR = Connector(name="contacts", base_url="https://api.example.com", routes=ROUTES)


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "v1/contacts", "contacts.read"),
        ("GET", "v1/contacts/2/notes", "contacts.read"),
        ("DELETE", "v1/contacts/2", "contacts.write"),
        ("DELETE", "v1/contacts/2/notes", None),
        ("DELETE", "v1/contacts", None),
        ("GET", "v1/health", "health"),
        ("GET", "v1/health/x", None),
        ("GET", "v2/contacts", None),
        ("GET", "", None),
    ],
)
def test_the_first_matching_route_names_the_scope(
    method: str, path: str, scope: str | None
) -> None:
    segments = tuple(path.split("/")) if path else ()
    assert CONNECTOR.scope_for(method, segments) == scope


def test_passthrough_needs_an_explicit_allowance() -> None:
    with pytest.raises(ValueError, match="allow_passthrough"):
        Connector(name="ftp", kind="passthrough")
    assert Connector(name="ftp", kind="passthrough", allow_passthrough=True).proxied is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name"}, "a connector name is"),
        ({"name": "a", "kind": "other"}, "kind must be"),
        ({"name": "a", "base_url": "ftp://x"}, "absolute http"),
        ({"name": "a", "base_url": "https://user:pw@x"}, "credentials"),
        ({"name": "a", "routes": ROUTES}, "need a base_url"),
        ({"name": "a", "auth_header": "X Bad"}, "header name"),
        ({"name": "a", "scopes": ("has space",)}, "scope token"),
    ],
)
def test_invalid_connectors_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Connector(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["v1", "/a/**/b", "/a/../b", "/a//b"])
def test_invalid_route_patterns_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        Route("GET", path, "s")


def test_the_credential_header_uses_the_configured_scheme() -> None:
    assert CONNECTOR.credential_header("k") == ("Authorization", "Bearer k")
    bare = Connector(name="a", auth_header="X-Api-Key", auth_scheme="")
    assert bare.credential_header("k") == ("X-Api-Key", "k")


@pytest.mark.parametrize("app_id", ["123456", "Iv23liAbCdEf"])
def test_a_github_app_is_named_by_its_numeric_id_or_client_id(app_id: str) -> None:
    assert GitHubAppSettings(app_id=app_id).app_id == app_id


@pytest.mark.parametrize("app_id", ["\u00b2", "\u0661\u0662\u0663", "12 ", "+12", "", "1" * 21])
def test_a_github_app_id_of_other_characters_is_refused(app_id: str) -> None:
    with pytest.raises(ValueError, match="app_id must be the app's numeric id"):
        GitHubAppSettings(app_id=app_id)
