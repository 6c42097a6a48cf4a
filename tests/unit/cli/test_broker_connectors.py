"""``jobtoken broker connect`` as a real subprocess, up to the authorization URL it prints:
the redirect URI and the scopes a template makes it ask for (cli/broker_connectors.py)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

HUBSPOT = (
    '[connectors.hubspot]\ntemplate = "hubspot"\n{extra}'
    '[connectors.hubspot.oauth]\nclient_id = "app-id"\n'
)


def _broker(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "jobtoken.cli", "broker", *args],
        input=stdin, capture_output=True, timeout=60, check=False,
    )  # fmt: skip


def _config(tmp_path: Path, connector: str) -> Path:
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    path = tmp_path / "broker.toml"
    path.write_text(f'[keys]\nmaster_key_file = "master.key"\n[store]\npath = "b.db"\n{connector}')
    stored = _broker("connector", "set", "hubspot", "--config", str(path),
                     "--credential-file", "-", stdin=b"client-secret")  # fmt: skip
    assert stored.returncode == 0, stored.stderr
    return path


def _authorization_query(config: Path, *extra: str) -> dict[str, list[str]]:
    """The query of the authorization URL ``connect hubspot`` prints (it then times out)."""
    done = _broker("connect", "hubspot", "--config", str(config), "--timeout", "0.5", *extra)
    assert done.returncode == 1, done.stderr
    (url,) = [
        line.strip() for line in done.stdout.decode().splitlines()
        if line.strip().startswith("https://app.hubspot.com/oauth/authorize?")
    ]  # fmt: skip
    return parse_qs(urlsplit(url).query)


def test_the_hubspot_template_redirects_to_localhost_which_hubspot_takes_over_http(
    tmp_path: Path,
) -> None:
    query = _authorization_query(_config(tmp_path, HUBSPOT.format(extra="")), "--port", "0")
    redirect = urlsplit(query["redirect_uri"][0])
    assert (redirect.scheme, redirect.hostname, redirect.path) == ("http", "localhost", "/callback")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_redirect_host_overrides_the_templates_choice(tmp_path: Path, host: str) -> None:
    query = _authorization_query(
        _config(tmp_path, HUBSPOT.format(extra="")), "--redirect-host", host
    )
    assert urlsplit(query["redirect_uri"][0]).hostname == host


def test_the_hubspot_url_asks_exactly_the_scopes_the_connector_declares(tmp_path: Path) -> None:
    connector = HUBSPOT.format(extra='scopes = ["crm.objects.contacts.read"]\n')
    query = _authorization_query(_config(tmp_path, connector))
    assert query["scope"] == ["crm.objects.contacts.read"]


def test_a_hubspot_connector_declaring_no_scopes_asks_the_templates(tmp_path: Path) -> None:
    query = _authorization_query(_config(tmp_path, HUBSPOT.format(extra="")))
    assert query["scope"] == ["crm.objects.contacts.read crm.objects.contacts.write"]
