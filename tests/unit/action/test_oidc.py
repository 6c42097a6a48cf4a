"""The runner's ID token, from the fake Actions runtime token endpoint."""

from __future__ import annotations

import io

import jwt
import pytest

from jobtoken.action.deadline import Deadline
from jobtoken.action.errors import OidcError
from jobtoken.action.oidc import MISSING_PERMISSION, RunnerIdTokens
from jobtoken.action.runtime import Runtime
from jobtoken.wire.unverified_claims import job_claims
from support.oidc_issuer import FakeOidcIssuer


def tokens(env: dict[str, str], out: io.StringIO | None = None) -> RunnerIdTokens:
    return RunnerIdTokens(env, Runtime({}, out or io.StringIO()), Deadline(10))


def test_fetch_returns_a_masked_token_for_the_url_encoded_audience(
    oidc_issuer: FakeOidcIssuer,
) -> None:
    out = io.StringIO()
    source = tokens(oidc_issuer.runner_env(), out)

    token = source.fetch("https://tokens.example.com/a b&c")

    assert token == oidc_issuer.issued[-1]
    assert out.getvalue().splitlines() == [
        f"::add-mask::{oidc_issuer.request_token}",
        f"::add-mask::{token}",
    ]
    assert job_claims(token)["repository"] == oidc_issuer.claims["repository"]
    assert source.last_claims == job_claims(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == "https://tokens.example.com/a b&c"


def test_each_fetch_is_a_fresh_token(oidc_issuer: FakeOidcIssuer) -> None:
    source = tokens(oidc_issuer.runner_env())
    assert source.fetch("a") != source.fetch("a")
    assert len(oidc_issuer.issued) == 2


@pytest.mark.parametrize(
    "env",
    [{}, {"ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:1/x"}],
    ids=["nothing", "no-request-token"],
)
def test_without_the_runner_variables_the_job_is_told_which_permission_to_add(
    env: dict[str, str],
) -> None:
    with pytest.raises(OidcError) as caught:
        tokens(env).fetch("aud")
    assert caught.value.message == MISSING_PERMISSION
    assert "permissions: id-token: write" in MISSING_PERMISSION
    assert (
        "pull requests from forks and Dependabot runs never get an ID token" in MISSING_PERMISSION
    )


def test_a_server_error_is_retried(oidc_issuer: FakeOidcIssuer, retry_pauses: list[float]) -> None:
    oidc_issuer.fail_next("500", count=2)
    token = tokens(oidc_issuer.runner_env()).fetch("aud")
    assert len(retry_pauses) == 2
    assert token == oidc_issuer.issued[-1]
    assert len([r for r in oidc_issuer.requests if r[1] == "/token"]) == 3


def test_a_malformed_answer_is_an_error(oidc_issuer: FakeOidcIssuer) -> None:
    oidc_issuer.fail_next("malformed")
    with pytest.raises(OidcError, match="body that is not JSON"):
        tokens(oidc_issuer.runner_env()).fetch("aud")


def test_an_answer_without_value_is_an_error(oidc_issuer: FakeOidcIssuer) -> None:
    oidc_issuer.fail_next("no-value")
    with pytest.raises(OidcError, match="without an ID token"):
        tokens(oidc_issuer.runner_env()).fetch("aud")


def test_a_wrong_request_token_is_reported_without_showing_it(oidc_issuer: FakeOidcIssuer) -> None:
    env = {**oidc_issuer.runner_env(), "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "wrong-secret"}
    with pytest.raises(OidcError, match="answered HTTP 401") as caught:
        tokens(env).fetch("aud")
    assert "wrong-secret" not in caught.value.message


def test_a_non_loopback_http_token_url_is_refused() -> None:
    env = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": "http://evil.example/x",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t",
    }
    with pytest.raises(OidcError, match="must use https"):
        tokens(env).fetch("aud")


def test_job_claims_are_neutralized_and_limited_to_the_listed_claims(
    oidc_issuer: FakeOidcIssuer,
) -> None:
    token = oidc_issuer.mint(ref="refs/heads/x\n::add-mask::y", environment=None, secret="s")
    claims = job_claims(token)
    assert claims["ref"] == "refs/heads/x : :add-mask: :y"
    assert "environment" not in claims
    assert "secret" not in claims
    assert job_claims("not.a-jwt.x") == {}
