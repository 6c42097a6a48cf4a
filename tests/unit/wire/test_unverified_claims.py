"""The job's claims shown in refusals: non-secret, neutralized, bounded."""

from __future__ import annotations

import base64
import json

from jobtoken.wire.unverified_claims import job_claims, unverified_claims
from support.oidc_issuer import FakeOidcIssuer


def _token(payload: object) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJSUzI1NiJ9.{body}.c2ln"


def test_reads_the_identifying_claims_of_a_real_token(oidc_issuer: FakeOidcIssuer) -> None:
    claims = job_claims(oidc_issuer.mint(audience="https://x.example"))
    assert claims["sub"] == "repo:octo-org/octo-repo:ref:refs/heads/main"
    assert claims["aud"] == "https://x.example"
    assert claims["repository"] == "octo-org/octo-repo"
    assert "jti" not in claims
    assert claims["run_id"] == oidc_issuer.claims["run_id"]
    assert "actor" not in claims  # only the listed claims


def test_workflow_commands_in_claims_are_neutralized() -> None:
    claims = job_claims(_token({"sub": "repo:a/b\n::warning::x", "aud": ["a", "b"]}))
    assert "::" not in claims["sub"]
    assert "\n" not in claims["sub"]
    assert claims["aud"] == "a b"


def test_unreadable_tokens_give_nothing() -> None:
    assert job_claims("not-a-jwt") == {}
    assert job_claims("a.!!!.c") == {}
    assert job_claims(_token([1, 2])) == {}
    assert job_claims("a." + "x" * 20000 + ".c") == {}


def test_unverified_claims_reads_any_payload_and_nothing_else() -> None:
    assert unverified_claims(_token({"jti": "abc", "n": 1})) == {"jti": "abc", "n": 1}
    assert unverified_claims(_token("a string")) == {}
    assert unverified_claims("a.b") == {}
    assert unverified_claims("a." + "x" * 20000 + ".c") == {}
