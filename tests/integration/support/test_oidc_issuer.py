"""The fake runner OIDC issuer behaves like GitHub's, over real HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jwt
import pytest

from support.dev import job_claims
from support.oidc_issuer import DEFAULT_CLAIMS, FakeOidcIssuer


def get(url: str, token: str | None = None, timeout: float = 5) -> tuple[int, bytes]:
    headers = {"Authorization": f"bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        ) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def request_id_token(issuer: FakeOidcIssuer, audience: str) -> str:
    status, body = get(f"{issuer.token_request_url}&audience={audience}", issuer.request_token)
    assert status == 200, body
    value: str = json.loads(body)["value"]
    return value


def verify_with_discovery(issuer: FakeOidcIssuer, token: str, audience: str) -> dict[str, Any]:
    """Verify the way a relying party does: discovery, JWKS, RS256."""
    _, discovery = get(f"{issuer.url}/.well-known/openid-configuration")
    jwks_uri = json.loads(discovery)["jwks_uri"]
    keys = jwt.PyJWKClient(jwks_uri).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, keys.key, algorithms=["RS256"], audience=audience, issuer=issuer.url
    )
    return claims


def test_token_endpoint_returns_a_verifiable_github_shaped_token(
    oidc_issuer: FakeOidcIssuer,
) -> None:
    token = request_id_token(oidc_issuer, "https://broker.example")

    claims = verify_with_discovery(oidc_issuer, token, "https://broker.example")
    assert jwt.get_unverified_header(token)["kid"] == oidc_issuer.kid
    for name, value in DEFAULT_CLAIMS.items():
        assert claims[name] == value
    assert claims["iss"] == oidc_issuer.url
    assert claims["exp"] - claims["iat"] == 300
    assert claims["iat"] - claims["nbf"] == 300
    assert claims["sub"] == f"repo:{claims['repository']}:ref:{claims['ref']}"
    for name in ("repository_id", "repository_owner_id", "run_id", "run_attempt", "check_run_id"):
        assert isinstance(claims[name], str)
        assert claims[name].isdigit()
    assert oidc_issuer.issued == [token]


def test_each_token_has_its_own_jti(oidc_issuer: FakeOidcIssuer) -> None:
    first, second = (request_id_token(oidc_issuer, "a") for _ in range(2))
    jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in (first, second)}
    assert len(jtis) == 2


def test_audience_is_url_decoded(oidc_issuer: FakeOidcIssuer) -> None:
    token = request_id_token(oidc_issuer, "https%3A%2F%2Fb.example%2Fx%3Fy")
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "https://b.example/x?y"


@pytest.mark.parametrize("bearer", [None, "wrong"])
def test_token_endpoint_refuses_a_missing_or_wrong_request_token(
    oidc_issuer: FakeOidcIssuer, bearer: str | None
) -> None:
    status, _ = get(f"{oidc_issuer.token_request_url}&audience=a", bearer)
    assert status == 401
    assert oidc_issuer.issued == []


def test_mint_overrides_and_removes_claims(oidc_issuer: FakeOidcIssuer) -> None:
    token = oidc_issuer.mint(audience="x", environment="production", jti=None)
    claims = verify_with_discovery(oidc_issuer, token, "x")
    assert claims["environment"] == "production"
    assert "jti" not in claims


def test_changed_default_claims_apply_to_later_tokens(oidc_issuer: FakeOidcIssuer) -> None:
    oidc_issuer.claims["ref"] = "refs/heads/dev"
    token = request_id_token(oidc_issuer, "x")
    assert jwt.decode(token, options={"verify_signature": False})["ref"] == "refs/heads/dev"


def test_failure_500_then_recovers(oidc_issuer: FakeOidcIssuer) -> None:
    oidc_issuer.fail_next("500")
    status, _ = get(f"{oidc_issuer.token_request_url}&audience=a", oidc_issuer.request_token)
    assert status == 500
    assert request_id_token(oidc_issuer, "a")


@pytest.mark.parametrize(("mode", "check"), [("malformed", b"<html"), ("no-value", b"count")])
def test_failure_bodies(oidc_issuer: FakeOidcIssuer, mode: str, check: bytes) -> None:
    oidc_issuer.fail_next(mode)  # type: ignore[arg-type]
    status, body = get(f"{oidc_issuer.token_request_url}&audience=a", oidc_issuer.request_token)
    assert status == 200
    assert check in body
    with pytest.raises((ValueError, KeyError)):  # either not JSON, or no value
        json.loads(body)["value"]


def test_failure_slow_delays_the_answer() -> None:
    with FakeOidcIssuer(slow_seconds=0.5) as issuer:
        issuer.fail_next("slow")
        started = time.monotonic()
        request_id_token(issuer, "a")
        assert time.monotonic() - started >= 0.5


def test_unknown_failure_mode_is_refused(oidc_issuer: FakeOidcIssuer) -> None:
    with pytest.raises(ValueError, match="unknown failure mode"):
        oidc_issuer.fail_next("teapot")  # type: ignore[arg-type]


DEV_SCRIPT = Path(__file__).resolve().parents[2] / "support" / "dev.py"


def test_dev_script_serves_the_issuer_and_prints_the_runner_variables(tmp_path: Any) -> None:
    claims_file = tmp_path / "claims.json"
    claims_file.write_text(json.dumps({"repository": "acme/app"}))
    proc = subprocess.Popen(
        [sys.executable, str(DEV_SCRIPT), "oidc-issuer", "--claims", str(claims_file)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        env = dict(line.split("=", 1) for line in lines[1:])
        url = env["ACTIONS_ID_TOKEN_REQUEST_URL"] + "&audience=cli"
        status, body = get(url, env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"])
        assert status == 200
        claims = jwt.decode(json.loads(body)["value"], options={"verify_signature": False})
        assert claims["repository"] == "acme/app"
        assert claims["ref"] == "refs/heads/main"  # the other defaults stay
        assert claims["sub"] == "repo:acme/app:ref:refs/heads/main"  # derived again
        assert lines[0] == f"issuer: {claims['iss']}"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def start_dev_issuer(*options: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``dev.py oidc-issuer OPTIONS`` running; its printed issuer URL and runner variables."""
    proc = subprocess.Popen(
        [sys.executable, str(DEV_SCRIPT), "oidc-issuer", *options],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline().strip() for _ in range(3)]
    printed = dict(line.split("=", 1) for line in lines[1:])
    printed["issuer"] = lines[0].removeprefix("issuer: ")
    return proc, printed


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    assert proc.wait(timeout=10) == 0


def test_claims_merge_key_by_key_null_removes_and_sub_follows_the_environment(
    tmp_path: Any,
) -> None:
    claims = job_claims({"repository": "acme/app", "environment": "prod", "enterprise": None})
    assert claims["sub"] == "repo:acme/app:environment:prod"
    assert "enterprise" not in claims
    assert claims["actor"] == DEFAULT_CLAIMS["actor"]  # every other default stays
    pull = job_claims({"event_name": "pull_request", "ref": "refs/pull/7/merge"})
    assert pull["sub"] == "repo:octo-org/octo-repo:pull_request"
    tag = job_claims({"ref": "refs/tags/v1.2.0", "ref_type": "tag"})
    assert tag["sub"] == "repo:octo-org/octo-repo:ref:refs/tags/v1.2.0"
    assert job_claims({"ref": "refs/heads/dev", "sub": "custom"})["sub"] == "custom"


def test_a_key_file_keeps_the_signing_key_and_kid_across_restarts(tmp_path: Any) -> None:
    key_file = tmp_path / "issuer.pem"
    keys = []
    for _ in range(2):
        proc, printed = start_dev_issuer("--key-file", str(key_file))
        try:
            status, body = get(f"{printed['issuer']}/.well-known/jwks")
            assert status == 200
            keys.append(json.loads(body)["keys"])
        finally:
            stop(proc)
    assert keys[0] == keys[1]
    assert len(keys[0][0]["kid"]) == 32
    assert key_file.stat().st_mode & 0o777 == 0o600
    # without it, each start has a new key
    proc, printed = start_dev_issuer()
    try:
        status, body = get(f"{printed['issuer']}/.well-known/jwks")
        assert json.loads(body)["keys"][0]["n"] != keys[0][0]["n"]
    finally:
        stop(proc)


def test_a_claims_file_that_is_not_an_object_is_a_usage_error(tmp_path: Any) -> None:
    claims_file = tmp_path / "claims.json"
    claims_file.write_text("[1]")
    result = subprocess.run(
        [sys.executable, str(DEV_SCRIPT), "oidc-issuer", "--claims", str(claims_file)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "must hold a JSON object of claims" in result.stderr


def test_docs_list_every_default_claim_with_its_value() -> None:
    page = (Path(__file__).resolve().parents[3] / "docs" / "local-runs.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)`", page, flags=re.MULTILINE))
    documented = {name: "" if value == '""' else value for name, value in rows.items()}
    assert documented == DEFAULT_CLAIMS
