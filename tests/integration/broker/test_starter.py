"""From ``jobtoken broker init`` to a broker that issues a token, as the README tells a
platform team: init, set ``public_url`` (and, here only, trust the loopback test
issuer), make the example policy the repository's own, check, serve, exchange."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from support.loopback import free_port, stop_process, wait_until_healthy
from support.oidc_issuer import FakeOidcIssuer

REPO, REPO_ID = "octo-org/octo-repo", "690001234"


def _broker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobtoken.cli", "broker", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_starter_serves_after_the_edits_it_names(tmp_path: Path) -> None:
    directory = tmp_path / "broker"
    assert _broker("init", str(directory)).returncode == 0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with FakeOidcIssuer() as issuer:
        issuer.claims.update(repository=REPO, repository_id=REPO_ID)
        config = directory / "broker.toml"
        text = config.read_text()
        text = text.replace('public_url = "https://tokens.example.com"', f'public_url = "{url}"')
        text = text.replace("port = 8080", f"port = {port}")
        text = text.replace("[oidc]\n", f'[oidc]\nloopback_test_issuers = ["{issuer.url}"]\n')
        config.write_text(text)
        example = directory / "policies" / "example-org" / "example-repo.yml"
        policy = directory / "policies" / "octo-org" / "octo-repo.yml"
        policy.parent.mkdir()
        policy.write_text(
            example.read_text()
            .replace("example-org/example-repo", REPO)
            .replace('repository_id: "1"', f'repository_id: "{REPO_ID}"')
        )
        example.unlink()

        checked = _broker("check", "--config", str(config))
        assert checked.returncode == 0, checked.stdout
        assert "0 error(s), 1 warning(s)" in checked.stdout  # the loopback issuer

        with (tmp_path / "serve.log").open("wb") as log:
            serve = subprocess.Popen(
                [sys.executable, "-m", "jobtoken.cli", "broker", "serve", "--config", str(config)],
                stdout=log, stderr=log,
            )  # fmt: skip
        try:
            wait_until_healthy(serve, f"{url}/healthz", name="the starter broker", timeout=20)
            response = requests.post(
                f"{url}/token",
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                    "subject_token": issuer.mint(audience=url),
                    "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                    "resource": "example",
                    "scope": "example.read",
                },
                timeout=30,
            )
            assert response.status_code == 200, response.text
            token = response.json()["access_token"]
            secret = (directory / "introspection-client.secret").read_text().strip()
            introspected = requests.post(
                f"{url}/introspect", data={"token": token},
                auth=("resource-server", secret), timeout=30,
            )  # fmt: skip
            assert introspected.json()["active"] is True
            assert introspected.json()["scope"] == "example.read"
        finally:
            stop_process(serve)
        log_text = (tmp_path / "serve.log").read_text()
        assert "check: oidc.loopback_test_issuers is set" in log_text  # serve ran the checks
        assert secret not in log_text
