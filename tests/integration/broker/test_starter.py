"""From ``jobtoken broker init`` to a broker that issues a token, as the README tells a
platform team: init, set ``public_url`` (and, here only, trust the loopback test
issuer), make the example policy the repository's own, check, serve, exchange."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from jobtoken.broker.setup.preflight import PLACEHOLDER_PUBLIC_URL
from support.broker_process import serving_broker
from support.loopback import free_port, stop_process, wait_until_healthy
from support.oidc_issuer import FakeOidcIssuer

REPO, REPO_ID = "octo-org/octo-repo", "690001234"


def _broker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobtoken.cli", "broker", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def _starter(directory: Path, issuer: FakeOidcIssuer, port: int, public_url: str) -> Path:
    """``broker init DIR`` edited as the README says: ``public_url``, the port, the
    loopback test issuer, the example policy made the repository's own."""
    assert _broker("init", str(directory)).returncode == 0
    issuer.claims.update(repository=REPO, repository_id=REPO_ID)
    config = directory / "broker.toml"
    text = config.read_text()
    text = text.replace('public_url = "https://tokens.example.com"', f'public_url = "{public_url}"')
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
    return config


def _exchange(url: str, subject_token: str) -> requests.Response:
    return requests.post(
        f"{url}/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": subject_token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "resource": "example",
            "scope": "example.read",
        },
        timeout=30,
    )


def test_the_starter_serves_after_the_edits_it_names(tmp_path: Path) -> None:
    directory = tmp_path / "broker"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with FakeOidcIssuer() as issuer:
        config = _starter(directory, issuer, port, url)

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
            response = _exchange(url, issuer.mint(audience=url))
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


def test_serve_refuses_the_example_public_url_and_with_dev_the_job_is_told_the_broker_is_unset(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with FakeOidcIssuer() as issuer:
        config = _starter(tmp_path / "broker", issuer, port, PLACEHOLDER_PUBLIC_URL)
        try:
            refused = _broker("serve", "--config", str(config))
        except subprocess.TimeoutExpired:
            raise AssertionError("serve started with the example public_url") from None
        assert refused.returncode == 1
        assert "[server] public_url" in refused.stderr
        assert f"still the example's {PLACEHOLDER_PUBLIC_URL}" in refused.stderr
        assert "--dev" in refused.stderr

        with (tmp_path / "serve.log").open("wb") as log:
            serve = subprocess.Popen(
                [sys.executable, "-m", "jobtoken.cli", "broker", "serve", "--config", str(config),
                 "--dev"],
                stdout=log, stderr=log,
            )  # fmt: skip
        try:
            wait_until_healthy(serve, f"{url}/healthz", name="the starter broker", timeout=20)
            # the action's default audience: the broker-url the workflow names
            response = _exchange(url, issuer.mint(audience=url))
        finally:
            stop_process(serve)
    assert response.status_code == 400, response.text
    description = response.json()["error_description"]
    assert "this broker is not configured yet, not the workflow" in description
    assert "[server] public_url" in description
    assert "request the ID token with that audience" not in description


def test_a_second_serve_on_the_same_port_names_server_port_before_starting_up(
    tmp_path: Path,
) -> None:
    with serving_broker(tmp_path) as first:
        second = _broker("serve", "--config", str(first.config_path))
        assert first.process is not None
        assert first.process.poll() is None  # the first broker still serves
        assert requests.get(f"{first.url}/healthz", timeout=10).status_code == 200
    assert second.returncode == 1
    assert f"[server] port {first.port} on 127.0.0.1 cannot be bound" in second.stderr
    assert "another broker already serving there" in second.stderr
    assert "Application startup complete" not in second.stderr
