"""The provider catalogue as data: ``templates.toml`` holds the schema
``templates.schema.json`` describes, every fact it states names its pages (or why no
page of the provider confirms it), and the loader reads it strictly, naming the key at
fault. The facts themselves are pinned in ``test_templates.py`` and below."""

from __future__ import annotations

import dataclasses
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from jobtoken.broker.connectors import model
from jobtoken.broker.connectors.templates import (
    CLIENT_AUTH_METHODS,
    CREDENTIALS,
    FACTS,
    SCOPE_SEPARATORS,
    TEMPLATES,
    load_catalogue,
)
from jobtoken.broker.ops.strict_toml import tomllib
from jobtoken.wire.grammar import CONNECTOR_NAME, SCOPE, json_schema_pattern

_PACKAGE = resources.files("jobtoken.broker.connectors")
CATALOGUE_TEXT = _PACKAGE.joinpath("templates.toml").read_text(encoding="utf-8")
CATALOGUE: dict[str, Any] = tomllib.loads(CATALOGUE_TEXT)
SCHEMA: dict[str, Any] = json.loads(_PACKAGE.joinpath("templates.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)


def test_the_shipped_catalogue_is_valid_against_its_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    VALIDATOR.validate(CATALOGUE)
    assert set(CATALOGUE) == set(TEMPLATES)


def test_the_schema_describes_what_the_loader_reads() -> None:
    template = SCHEMA["$defs"]["template"]
    assert set(template["properties"]) == {*FACTS, "docs", "sources", "unconfirmed"}
    assert SCHEMA["$defs"]["fact"]["enum"] == list(FACTS)
    assert tuple(template["properties"]["credential"]["enum"]) == CREDENTIALS
    assert tuple(template["properties"]["client_auth"]["enum"]) == CLIENT_AUTH_METHODS
    assert tuple(template["properties"]["scope_separator"]["enum"]) == SCOPE_SEPARATORS
    route = SCHEMA["$defs"]["route"]
    assert set(route["properties"]) == {f.name for f in dataclasses.fields(model.Route)}
    assert tuple(route["properties"]["method"]["enum"]) == model.METHODS
    # the names' patterns are the grammar's (wire/grammar.py), not copies of it
    assert SCHEMA["propertyNames"]["pattern"] == json_schema_pattern(CONNECTOR_NAME)
    assert route["properties"]["scope"]["pattern"] == json_schema_pattern(SCOPE)
    upstream = template["properties"]["upstream_scopes"]["items"]["pattern"]
    assert upstream == json_schema_pattern(SCOPE)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_fact_names_its_pages_or_why_none_confirms_it(name: str) -> None:
    table = CATALOGUE[name]
    sources, unconfirmed, pages = (table.get(k, {}) for k in ("sources", "unconfirmed", "docs"))
    stated = [fact for fact in FACTS if fact in table]
    for fact in stated:
        assert sources.get(fact) or unconfirmed.get(fact, "").strip(), (name, fact)
        assert all(pages[page].startswith("https://") for page in sources.get(fact, ())), fact
    assert set(sources) | set(unconfirmed) <= set(stated)
    assert {page for cited in sources.values() for page in cited} == set(pages)
    # the facts every connector of the template relies on cite a provider page
    assert sources["credential"], name
    if table["credential"] == "oauth2-refresh":
        assert sources["token_url"], name
    assert TEMPLATES[name].docs == tuple(pages.values())


#: today's templates (the Python catalogue they were written from, issue 19): every
#: fact but the routes, which ``test_templates.py`` and the route counts here pin
EXPECTED = {
    "hubspot": (
        "oauth2-refresh", "https://app.hubspot.com/oauth/authorize",
        "https://api.hubapi.com/oauth/2026-03/token", "", " ", "client_secret_post",
        "https://api.hubapi.com", "", ("access_token",), {},
        ("crm.objects.contacts.read", "crm.objects.contacts.write"), {}, "form", 12,
    ),
    "slack": (
        "oauth2-refresh", "https://slack.com/oauth/v2/authorize",
        "https://slack.com/api/oauth.v2.access", "", ",", "client_secret_basic",
        "https://slack.com", "", ("access_token",), {}, ("chat:write", "channels:read"), {},
        "form", 4,
    ),
    "notion": (
        "oauth2-refresh", "https://api.notion.com/v1/oauth/authorize",
        "https://api.notion.com/v1/oauth/token", "https://api.notion.com/v1/oauth/revoke",
        " ", "client_secret_basic", "https://api.notion.com", "", ("access_token",),
        {"owner": "user"}, (), {"Notion-Version": "2026-03-11"}, "json", 15,
    ),
    "salesforce": (
        "oauth2-refresh", "https://login.salesforce.com/services/oauth2/authorize",
        "https://login.salesforce.com/services/oauth2/token",
        "https://login.salesforce.com/services/oauth2/revoke", " ", "client_secret_post", "",
        "instance_url", ("access_token",), {}, ("api", "refresh_token"), {}, "form", 6,
    ),
    "google": (
        "oauth2-refresh", "https://accounts.google.com/o/oauth2/v2/auth",
        "https://oauth2.googleapis.com/token", "https://oauth2.googleapis.com/revoke", " ",
        "client_secret_post", "https://www.googleapis.com", "", ("access_token",),
        {"access_type": "offline", "prompt": "consent"},
        ("https://www.googleapis.com/auth/drive.readonly",
         "https://www.googleapis.com/auth/calendar.readonly"),
        {}, "form", 6,
    ),
    "github-app": (
        "github-app", "", "", "", " ", "client_secret_post", "https://api.github.com", "",
        ("token",), {}, (), {"X-GitHub-Api-Version": "2022-11-28"}, "form", 10,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_templates_are_those_the_python_catalogue_built(name: str) -> None:
    t = TEMPLATES[name]
    assert (
        t.credential, t.authorize_url, t.token_url, t.revoke_url, t.scope_separator,
        t.client_auth, t.base_url, t.base_url_field, t.access_token_path,
        dict(t.authorize_params), t.upstream_scopes, dict(t.headers), t.token_body,
        len(t.routes),
    ) == EXPECTED[name]  # fmt: skip


def _catalogue(**changes: Any) -> str:
    """The shipped catalogue's slack table, changed: {"a.b": value} sets, None deletes."""
    slack = json.loads(json.dumps(CATALOGUE["slack"]))
    for dotted, value in changes.items():
        *path, key = dotted.split(".")
        table = slack
        for part in path:
            table = table[int(part)] if isinstance(table, list) else table[part]
        if value is None:
            del table[key]
        else:
            table[key] = value
    return _toml({"slack": slack})


def _toml(document: dict[str, Any]) -> str:
    # inline tables and arrays: enough TOML for these documents (json.dumps quotes them)
    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    return "".join(f"{json.dumps(name)} = {value(table)}\n" for name, table in document.items())


def test_each_template_names_the_redirect_host_its_provider_takes_over_http() -> None:
    hosts = {name: t.redirect_host for name, t in TEMPLATES.items()}
    assert hosts == {name: "127.0.0.1" for name in TEMPLATES} | {"hubspot": "localhost"}


def test_the_docs_example_is_a_catalogue_the_loader_reads() -> None:
    page = Path(__file__).resolve().parents[4] / "docs" / "connectors-templates.md"
    (example,) = re.findall(r"```toml\n(.*?)```", page.read_text(), re.S)
    acme = load_catalogue(example)["acme"]
    VALIDATOR.validate(tomllib.loads(example))
    assert acme.client_auth == "client_secret_basic"
    assert acme.scope_separator == " "  # left out: the connector default


def test_the_test_writes_the_catalogue_it_reads() -> None:
    assert load_catalogue(_catalogue())["slack"] == TEMPLATES["slack"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tokn_url": "https://slack.com/x"}, r"^\[slack\] unknown key 'tokn_url'; did you m"),
        ({"routes.0.socpe": "chat:write"}, r"^\[slack\.routes\[0\]\] unknown key 'socpe'; did you"),
        ({"routes.0.method": "BREW"}, r"^\[slack\.routes\[0\]\] method must be one of"),
        ({"upstream_scopes": "chat:write"}, r"^\[slack\] upstream_scopes must be a list"),
        ({"token_url": "http://slack.com/api/oauth.v2.access"}, r"token_url is not an https"),
        ({"unconfirmed.revoke_url": None}, r"^\[slack\] revoke_url has no source"),
        ({"sources.token_url": None}, "token_url has no source"),
        ({"sources.token_url": []}, r"\[slack\.sources\] token_url: name at least one page"),
        ({"sources.token_url": ["acess"]}, r"token_url: no page 'acess' in \[slack\.docs\]"),
        ({"sources.headers": ["access"]}, r"\[slack\.sources\] headers: \[slack\] states no"),
        ({"unconfirmed.routes": " "}, r"\[slack\.unconfirmed\] routes: say why"),
        ({"docs.extra": "https://slack.com/"}, r"\[slack\.docs\] extra: no fact cites"),
        ({"docs.post": "http://api.slack.com/methods/chat.postMessage"}, "is not https"),
    ],
)
def test_a_bad_catalogue_is_refused_naming_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_catalogue(_catalogue(**changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"tokn_url": "https://slack.com/x"},
        {"routes.0.socpe": "chat:write"},
        {"routes.0.method": "BREW"},
        {"sources.tokn_url": ["access"]},
        {"docs.post": "http://api.slack.com/methods/chat.postMessage"},
        {"base_url_field": "instance_url"},  # both base_url and base_url_field
        {"routes": []},
    ],
)
def test_the_schema_refuses_a_bad_catalogue_too(changes: dict[str, Any]) -> None:
    assert not VALIDATOR.is_valid(tomllib.loads(_catalogue(**changes)))
