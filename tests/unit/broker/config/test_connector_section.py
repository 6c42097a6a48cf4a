"""``[connectors.NAME]`` with an upstream ``credential``, ``[oauth]``, ``[github_app]``
and ``template`` (config/connector_section.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobtoken.broker.config import ConfigError, load_config
from jobtoken.broker.connectors.templates import TEMPLATES


def _load(tmp_path: Path, text: str) -> dict[str, object]:
    path = tmp_path / "broker.toml"
    path.write_text(text)
    return dict(load_config(path).connectors)


def test_a_template_fills_what_the_table_does_not_set(tmp_path: Path) -> None:
    connectors = _load(
        tmp_path,
        '[connectors.crm]\ntemplate = "hubspot"\n[connectors.crm.oauth]\nclient_id = "abc"\n',
    )
    crm = connectors["crm"]
    hubspot = TEMPLATES["hubspot"]
    assert crm.credential == "oauth2-refresh"  # type: ignore[attr-defined]
    assert crm.base_url == hubspot.base_url  # type: ignore[attr-defined]
    assert crm.routes == hubspot.routes  # type: ignore[attr-defined]
    assert crm.scopes == hubspot.scopes()  # type: ignore[attr-defined]
    oauth = crm.oauth  # type: ignore[attr-defined]
    assert (oauth.client_id, oauth.token_url, oauth.authorize_url) == (
        "abc",
        hubspot.token_url,
        hubspot.authorize_url,
    )
    assert oauth.scopes == hubspot.upstream_scopes
    assert crm.proxied  # type: ignore[attr-defined]


def test_values_in_the_table_win_over_the_template(tmp_path: Path) -> None:
    connectors = _load(
        tmp_path,
        """
[connectors.crm]
template = "hubspot"
base_url = "https://eu.api.example.com"
scopes = ["contacts.read"]
[[connectors.crm.routes]]
path = "/v1/contacts"
scope = "contacts.read"
[connectors.crm.oauth]
client_id = "abc"
token_url = "https://login.example.com/token"
refresh_margin_seconds = 120
""",
    )
    crm = connectors["crm"]
    assert crm.base_url == "https://eu.api.example.com"  # type: ignore[attr-defined]
    assert [r.path for r in crm.routes] == ["/v1/contacts"]  # type: ignore[attr-defined]
    assert crm.oauth.token_url == "https://login.example.com/token"  # type: ignore[attr-defined]
    assert crm.oauth.refresh_margin_seconds == 120  # type: ignore[attr-defined]


def test_quirks_come_with_their_templates(tmp_path: Path) -> None:
    connectors = _load(
        tmp_path,
        """
[connectors.sf]
template = "salesforce"
[connectors.sf.oauth]
client_id = "abc"
[connectors.notion]
template = "notion"
[connectors.notion.oauth]
client_id = "abc"
[connectors.gh]
template = "github-app"
[connectors.gh.github_app]
app_id = "12345"
""",
    )
    assert connectors["sf"].oauth.base_url_field == "instance_url"  # type: ignore[attr-defined]
    assert connectors["sf"].proxied  # type: ignore[attr-defined]
    assert dict(connectors["notion"].headers)["Notion-Version"]  # type: ignore[attr-defined]
    assert connectors["notion"].oauth.token_body == "json"  # type: ignore[attr-defined]
    gh = connectors["gh"]
    assert gh.credential == "github-app"
    assert gh.per_job_upstream
    assert gh.github_app.api_url == "https://api.github.com"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('credential = "oauth2-refresh"\n', "client_id must be set"),
        ('credential = "oauth2-magic"\n', "credential must be one of"),
        ('template = "hubspot2"\n', "unknown provider template 'hubspot2'; known: github-app"),
        (
            'credential = "oauth2-refresh"\n[connectors.c.oauth]\nclient_id = "a"\n'
            'token_url = "http://login.example.com/token"\n',
            r"\[connectors.c.oauth\] token_url must be an https:// URL",
        ),
        (
            'credential = "oauth2-refresh"\n[connectors.c.oauth]\nclient_id = "a"\n'
            'token_url = "https://l.example/t"\nclient_secret = "hunter2"\n',
            "secrets are never written in the config file",
        ),
        (
            'credential = "oauth2-client-credentials"\n[connectors.c.oauth]\nclient_id = "a"\n'
            'token_url = "https://l.example/t"\nscopes = ["a b"]\n',
            "must hold no space",
        ),
        ('credential = "github-app"\n[connectors.c.github_app]\napp_id = "x"\n', "app_id must be"),
        ('[connectors.c.oauth]\nclient_id = "a"\n', r"oauth\]; it is read only with credential"),
        ('[connectors.c.headers]\n"Bad Header" = "x"\n', "must be a header name"),
    ],
)
def test_connector_tables_refuse_with_the_place_named(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, "[connectors.c]\n" + text)


def test_a_sealed_credential_file_is_relative_to_the_config(tmp_path: Path) -> None:
    connectors = _load(tmp_path, '[connectors.api]\ncredential_sealed_file = "sealed/api.box"\n')
    assert connectors["api"].credential_sealed_file == tmp_path / "sealed" / "api.box"  # type: ignore[attr-defined]
    assert _load(tmp_path, "[connectors.api]\n")["api"].credential_sealed_file is None  # type: ignore[attr-defined]


def test_oauth_redirect_host_comes_from_the_template_or_the_table(tmp_path: Path) -> None:
    connectors = _load(
        tmp_path,
        '[connectors.crm]\ntemplate = "hubspot"\n[connectors.crm.oauth]\nclient_id = "abc"\n'
        '[connectors.own]\ncredential = "oauth2-refresh"\n[connectors.own.oauth]\n'
        'client_id = "a"\ntoken_url = "https://login.example.com/token"\n'
        'redirect_host = "localhost"\n',
    )
    assert connectors["crm"].oauth.redirect_host == "localhost"  # type: ignore[attr-defined]
    assert connectors["own"].oauth.redirect_host == "localhost"  # type: ignore[attr-defined]


def test_an_oauth_redirect_host_other_than_the_loopback_names_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"redirect_host must be one of 127\.0\.0\.1, localhost"):
        _load(
            tmp_path,
            '[connectors.own]\ncredential = "oauth2-refresh"\n[connectors.own.oauth]\n'
            'client_id = "a"\ntoken_url = "https://login.example.com/token"\n'
            'redirect_host = "0.0.0.0"\n',
        )


def test_a_hubspot_connector_asks_the_provider_for_the_scopes_it_declares(
    tmp_path: Path,
) -> None:
    connectors = _load(
        tmp_path,
        '[connectors.crm]\ntemplate = "hubspot"\nscopes = ["crm.objects.contacts.read"]\n'
        '[connectors.crm.oauth]\nclient_id = "abc"\n',
    )
    assert connectors["crm"].oauth.scopes == ("crm.objects.contacts.read",)  # type: ignore[attr-defined]
