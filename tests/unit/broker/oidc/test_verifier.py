"""OIDC ID-token verification: real GitHub tokens, and every way to forge or bend one."""

from __future__ import annotations

import base64
import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from jobtoken.broker.oidc.verifier import (
    GITHUB_ISSUER,
    MAX_TOKEN_BYTES,
    IdTokenVerifier,
    InMemoryJtiStore,
    InvalidIdToken,
    TrustedIssuer,
    VerifierConfig,
    ghes_issuer,
    github_enterprise_issuer,
)
from support.loopback_guard import loopback_only
from support.oidc_issuer import FakeOidcIssuer

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "github-oidc"
AUDIENCE = "https://broker.test"

# (file, audience, repository, repository_id) of GitHub-signed tokens living 300 s.
GITHUB_TOKENS = [
    (
        "di_id_gha_token.txt",
        "sigstore",
        "sigstore-conformance/extremely-dangerous-public-oidc-beacon",
        "632596897",
    ),
    (
        "marchenko1985_github_oidc_token_demo_verify_mjs_token.txt",
        "demo",
        "marchenko1985/github_oidc_token_demo",
        "1217768983",
    ),
    (
        "neu-se_autograder-action_main_ts_token.txt",
        "https://github.com/neu-se",
        "neu-se/autograder-action",
        "922761846",
    ),
]
RGL_TOKEN = "rgl_github-actions-validate-jwt_main_go_token.txt"


# -- helpers -------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unverified_payload(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    payload: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return payload


def forge(
    key: rsa.RSAPrivateKey, header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes
) -> str:
    """A compact RS256 JWS over exactly these header and payload bytes."""
    raw_header = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw_payload = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64(raw_header)}.{b64(raw_payload)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def github_claims(
    issuer: FakeOidcIssuer, now: float | None = None, **overrides: Any
) -> dict[str, Any]:
    issued = int(time.time() if now is None else now)
    claims = {
        **issuer.claims,
        "iss": issuer.url,
        "aud": AUDIENCE,
        "jti": f"jti-{time.monotonic_ns()}",
        "iat": issued,
        "nbf": issued - 300,
        "exp": issued + 300,
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def header_for(issuer: FakeOidcIssuer, **extra: Any) -> dict[str, Any]:
    return {"alg": "RS256", "kid": issuer.kid, "typ": "JWT", **extra}


def verifier_for(issuer: FakeOidcIssuer, **config: Any) -> IdTokenVerifier:
    settings: dict[str, Any] = {
        "issuers": (TrustedIssuer(issuer.url, allow_http_loopback=True),),
        "audience": AUDIENCE,
        **config,
    }
    return IdTokenVerifier(VerifierConfig(**settings), InMemoryJtiStore())


def github_verifier(audience: str, now: float, **config: Any) -> IdTokenVerifier:
    """A verifier for github.com with GitHub's published JWKS pinned (no network)."""
    config = {"issuers": (TrustedIssuer(GITHUB_ISSUER),), "audience": audience, **config}
    verifier = IdTokenVerifier(VerifierConfig(**config), InMemoryJtiStore(clock=lambda: now))
    verifier.key_set(GITHUB_ISSUER).load_document(
        (FIXTURES / "github_jwks.json").read_bytes(), now=now
    )
    return verifier


def rejects(verifier: IdTokenVerifier, token: str, reason: str, **kwargs: Any) -> InvalidIdToken:
    with pytest.raises(InvalidIdToken) as caught:
        verifier.verify(token, **kwargs)
    error = caught.value
    assert error.reason == reason, f"expected {reason}, got {error.reason}: {error.description}"
    assert str(error) == error.description
    for segment in token.split("."):
        if len(segment) >= 12:
            assert segment not in error.description, "the error echoes the token"
    return error


@functools.cache
def attacker_key() -> rsa.RSAPrivateKey:
    """A key of the attacker's own (not the issuer's), made once: RSA keys are slow to make."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def issuer() -> Any:
    with FakeOidcIssuer() as running:
        yield running


@pytest.fixture
def verifier(issuer: FakeOidcIssuer) -> IdTokenVerifier:
    return verifier_for(issuer)


# -- real GitHub-signed tokens ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "audience", "repository", "repository_id"), GITHUB_TOKENS)
def test_github_signed_token_verifies_inside_its_lifetime(
    name: str, audience: str, repository: str, repository_id: str
) -> None:
    token = (FIXTURES / name).read_text().strip()
    payload = unverified_payload(token)
    now = payload["iat"] + 60
    with loopback_only() as connections:
        claims = github_verifier(audience, now).verify(token, now=now)
    assert connections == []
    assert (claims.iss, claims.aud) == (GITHUB_ISSUER, audience)
    assert (claims.repository, claims.repository_id) == (repository, repository_id)
    assert claims.repository_owner == repository.split("/")[0]
    assert claims.run_id == payload["run_id"]
    assert claims.run_attempt == payload["run_attempt"]
    assert claims.check_run_id == payload.get("check_run_id")
    assert claims.claims["workflow_ref"] == payload["workflow_ref"]
    assert claims.sub == f"repo:{repository}:ref:refs/heads/main"


@pytest.mark.parametrize(("name", "audience", "repository", "repository_id"), GITHUB_TOKENS)
def test_github_signed_token_is_refused_outside_its_lifetime(
    name: str, audience: str, repository: str, repository_id: str
) -> None:
    token = (FIXTURES / name).read_text().strip()
    payload = unverified_payload(token)
    rejects(
        github_verifier(audience, payload["exp"] + 31), token, "expired", now=payload["exp"] + 31
    )
    early = payload["nbf"] - 31
    rejects(github_verifier(audience, early), token, "not_yet_valid", now=early)


@pytest.mark.parametrize(("name", "audience", "repository", "repository_id"), GITHUB_TOKENS)
def test_github_signed_token_altered_by_one_byte_is_refused_at_every_position(
    name: str, audience: str, repository: str, repository_id: str
) -> None:
    token = (FIXTURES / name).read_text().strip()
    now = unverified_payload(token)["iat"] + 60
    verifier = github_verifier(audience, now)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    segment_ends = {i - 1 for i, char in enumerate(token) if char == "."} | {len(token) - 1}
    alterations = []
    for position, char in enumerate(token):
        if char == ".":
            continue
        # The last character of a segment also carries unused bits: try every other
        # character there, so a second encoding of the same bytes cannot slip through.
        candidates = alphabet if position in segment_ends else ("B" if char == "A" else "A")
        alterations += [(position, c) for c in candidates if c != char]
    accepted = []
    with loopback_only() as connections:
        for position, replacement in alterations:
            altered = token[:position] + replacement + token[position + 1 :]
            try:
                verifier.verify(altered, now=now)
            except InvalidIdToken:
                continue
            accepted.append((position, replacement))
    assert accepted == [], f"altered tokens accepted: {accepted}"
    assert connections == []
    # The original still verifies afterwards: the alterations failed on their own merits.
    assert verifier.verify(token, now=now).repository_id == repository_id


def test_six_hour_github_token_is_refused_by_the_default_lifetime_cap() -> None:
    token = (FIXTURES / RGL_TOKEN).read_text().strip()
    now = unverified_payload(token)["iat"] + 60
    error = rejects(
        github_verifier("https://example.com", now), token, "lifetime_too_long", now=now
    )
    assert "900 s" in error.description


def test_six_hour_github_token_is_accepted_when_the_cap_allows_it() -> None:
    token = (FIXTURES / RGL_TOKEN).read_text().strip()
    now = unverified_payload(token)["iat"] + 3 * 3600
    verifier = github_verifier("https://example.com", now, max_token_lifetime_seconds=6 * 3600)
    assert verifier.verify(token, now=now).repository == "rgl/github-actions-validate-jwt"


def test_github_token_for_another_audience_is_refused() -> None:
    name, _, _, _ = GITHUB_TOKENS[0]
    token = (FIXTURES / name).read_text().strip()
    now = unverified_payload(token)["iat"] + 60
    error = rejects(
        github_verifier("https://broker.test", now), token, "audience_mismatch", now=now
    )
    assert "request the ID token with that audience" in error.description


@pytest.mark.parametrize("audience", ["https://tokens.example.com", "https://b.example.org/x"])
def test_an_audience_mismatch_against_an_example_broker_url_names_the_broker_not_the_job(
    audience: str,
) -> None:
    name, _, _, _ = GITHUB_TOKENS[0]
    token = (FIXTURES / name).read_text().strip()
    now = unverified_payload(token)["iat"] + 60
    error = rejects(github_verifier(audience, now), token, "audience_mismatch", now=now)
    assert "this broker is not configured yet, not the workflow" in error.description
    assert "[server] public_url" in error.description
    assert "request the ID token with that audience" not in error.description


# -- real discovery and JWKS over HTTP on loopback -------------------------------------------------


def test_token_verifies_through_discovery_and_jwks_fetched_over_http(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier
) -> None:
    before = len(issuer.requests)
    with loopback_only() as connections:
        claims = verifier.verify(issuer.mint(audience=AUDIENCE))
        verifier.verify(issuer.mint(audience=AUDIENCE))
    assert issuer.requests[before:] == [
        ("GET", "/.well-known/openid-configuration"),
        ("GET", "/.well-known/jwks"),
    ], "keys are fetched once, then served from the cache"
    assert connections
    assert all(address[0] == "127.0.0.1" for address in connections)
    assert claims.iss == issuer.url
    assert claims.repository_id == issuer.claims["repository_id"]
    assert claims.check_run_id == issuer.claims["check_run_id"]


def test_unknown_kid_refetches_at_most_once_per_interval(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier
) -> None:
    now = time.time()
    verifier.verify(issuer.mint(audience=AUDIENCE), now=now)
    stranger = forge(
        issuer.private_key, header_for(issuer, kid="rotated-away"), github_claims(issuer, now)
    )
    before = len(issuer.requests)
    rejects(verifier, stranger, "unknown_key", now=now + 61)
    assert len(issuer.requests) == before + 2, "an unknown kid refetches discovery and JWKS"
    for _ in range(5):
        rejects(verifier, stranger, "unknown_key", now=now + 62)
    assert len(issuer.requests) == before + 2, "no refetch within the interval"
    rejects(verifier, stranger, "unknown_key", now=now + 122)
    assert len(issuer.requests) == before + 4, "one refetch once the interval has passed"


def test_rotated_issuer_key_is_picked_up_by_a_refetch(issuer: FakeOidcIssuer) -> None:
    with FakeOidcIssuer() as rotating:
        verifier = verifier_for(rotating)
        verifier.verify(rotating.mint(audience=AUDIENCE))
        rotating.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        rotating.kid = "second-key"
        claims = verifier.verify(rotating.mint(audience=AUDIENCE), now=time.time() + 61)
        assert claims.iss == rotating.url


def test_unreachable_issuer_denies(issuer: FakeOidcIssuer) -> None:
    with FakeOidcIssuer() as gone:
        token = gone.mint(audience=AUDIENCE)
        verifier = verifier_for(gone, connect_timeout_seconds=0.5, read_timeout_seconds=0.5)
    rejects(verifier, token, "jwks_unavailable")


# -- header attacks --------------------------------------------------------------------------------


def test_alg_none_is_refused(issuer: FakeOidcIssuer, verifier: IdTokenVerifier) -> None:
    header = b64(json.dumps({"alg": "none", "kid": issuer.kid}).encode())
    payload = b64(json.dumps(github_claims(issuer)).encode())
    rejects(verifier, f"{header}.{payload}.", "malformed")
    rejects(verifier, f"{header}.{payload}.{b64(b'x' * 256)}", "unsupported_algorithm")


def test_hs256_signed_with_the_rsa_public_key_is_refused(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier
) -> None:
    import hmac

    pem = issuer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "kid": issuer.kid, "typ": "JWT"}).encode())
    payload = b64(json.dumps(github_claims(issuer)).encode())
    mac = hmac.new(pem, f"{header}.{payload}".encode(), "sha256").digest()
    rejects(verifier, f"{header}.{payload}.{b64(mac)}", "unsupported_algorithm")


def test_attacker_key_reusing_a_known_kid_is_refused(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier
) -> None:
    attacker = attacker_key()
    rejects(verifier, forge(attacker, header_for(issuer), github_claims(issuer)), "bad_signature")


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c", "crit"])
def test_headers_naming_their_own_key_are_refused_without_fetching_it(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier, name: str
) -> None:
    attacker = attacker_key()
    value: Any = f"{issuer.url}/attacker/jwks"
    if name == "jwk":
        value = {"kty": "RSA", "kid": issuer.kid, "n": "AQAB", "e": "AQAB"}
    elif name in ("x5c", "crit"):
        value = ["exp"]
    before = len(issuer.requests)
    token = forge(attacker, header_for(issuer, **{name: value}), github_claims(issuer))
    with loopback_only() as connections:
        rejects(verifier, token, "forbidden_header")
    assert connections == []
    assert issuer.requests[before:] == []


def test_unexpected_header_fields_and_typ_are_refused(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier
) -> None:
    key = issuer.private_key
    rejects(
        verifier,
        forge(key, header_for(issuer, zip="DEF"), github_claims(issuer)),
        "unsupported_header",
    )
    rejects(
        verifier,
        forge(key, header_for(issuer, typ="at+jwt"), github_claims(issuer)),
        "unsupported_header",
    )
    no_kid = {"alg": "RS256", "typ": "JWT"}
    rejects(verifier, forge(key, no_kid, github_claims(issuer)), "malformed")


# -- issuer allowlist before any network call -----------------------------------------------------


@pytest.mark.parametrize(
    "iss",
    [
        "https://token.actions.githubusercontent.com.evil.example",
        "http://169.254.169.254/latest/meta-data",
        "https://token.actions.githubusercontent.com",  # real GitHub, but not configured here
        "TRAILING-SLASH",
        "UPPER-CASE",
    ],
)
def test_unlisted_issuer_is_refused_with_zero_outbound_requests(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier, iss: str
) -> None:
    iss = {"TRAILING-SLASH": issuer.url + "/", "UPPER-CASE": issuer.url.upper()}.get(iss, iss)
    attacker = attacker_key()
    token = forge(attacker, header_for(issuer), github_claims(issuer, iss=iss))
    before = len(issuer.requests)
    with loopback_only() as connections:
        rejects(verifier, token, "issuer_not_allowed")
    assert connections == [], "no socket was even opened"
    assert issuer.requests[before:] == []


def test_issuer_configuration_allows_http_only_for_loopback_test_issuers() -> None:
    TrustedIssuer("http://127.0.0.1:8080", allow_http_loopback=True)
    TrustedIssuer(GITHUB_ISSUER)
    TrustedIssuer(github_enterprise_issuer("octo-enterprise"))
    TrustedIssuer(ghes_issuer("github.example.com"))
    assert ghes_issuer("github.example.com") == "https://github.example.com/_services/token"
    assert github_enterprise_issuer("acme") == f"{GITHUB_ISSUER}/acme"
    for bad in (
        "http://token.actions.githubusercontent.com",
        "http://10.0.0.1:80",
        "ftp://x.example",
    ):
        with pytest.raises(ValueError, match="https"):
            TrustedIssuer(bad, allow_http_loopback=True)
    with pytest.raises(ValueError, match="https"):
        TrustedIssuer("http://127.0.0.1:8080")
    with pytest.raises(ValueError, match="exactly"):
        TrustedIssuer(GITHUB_ISSUER + "/")
    with pytest.raises(ValueError, match="slug"):
        github_enterprise_issuer("../evil")
    with pytest.raises(ValueError, match="DNS name"):
        ghes_issuer("evil.example/x?")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("leeway_seconds", 61),
        ("leeway_seconds", -1),
        ("max_token_lifetime_seconds", 0),
        ("audience", ""),
        ("read_timeout_seconds", 0),
        ("issuers", ()),
    ],
)
def test_config_refuses_unsafe_settings(issuer: FakeOidcIssuer, setting: str, value: Any) -> None:
    with pytest.raises(ValueError, match=r"must|issuer"):
        verifier_for(issuer, **{setting: value})


# -- audience and times ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aud", "reason"),
    [("https://other.test", "audience_mismatch"), (None, "missing_claim"),
     ([AUDIENCE], "audience_mismatch"), ([AUDIENCE, "https://other.test"], "audience_mismatch"),
     (AUDIENCE + "/", "audience_mismatch")],
)  # fmt: skip
def test_audience_must_be_exactly_the_brokers(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier, aud: Any, reason: str
) -> None:
    token = forge(issuer.private_key, header_for(issuer), github_claims(issuer, aud=aud))
    rejects(verifier, token, reason)


def test_time_claims_are_checked_against_the_clock_with_leeway(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier
) -> None:
    now = 1_800_000_000
    token = forge(issuer.private_key, header_for(issuer), github_claims(issuer, now))
    rejects(verifier, token, "expired", now=now + 300 + 31)
    rejects(verifier, token, "not_yet_valid", now=now - 300 - 31)
    assert verifier.verify(token, now=now + 300 + 29).exp == now + 300, "leeway is 30 s"


@dataclass(frozen=True)
class Later:
    """A time claim ``seconds`` after the test's clock."""

    seconds: int


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"nbf": Later(120)}, "not_yet_valid"),
        ({"iat": Later(120), "exp": Later(300)}, "issued_in_future"),
        ({"exp": Later(10**9)}, "lifetime_too_long"),
        ({"exp": Later(901), "iat": Later(0)}, "lifetime_too_long"),
        ({"exp": Later(-100)}, "expired"),
        ({"exp": float(2**31)}, "invalid_claim"),
        ({"exp": "2000000000"}, "invalid_claim"),
        ({"iat": True}, "invalid_claim"),
        ({"exp": None}, "missing_claim"),
        ({"nbf": None}, "missing_claim"),
        ({"iat": None}, "missing_claim"),
    ],
)
def test_bad_time_claims_are_refused(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier, overrides: dict[str, Any], reason: str
) -> None:
    now = int(time.time())
    resolved = {
        name: now + value.seconds if isinstance(value, Later) else value
        for name, value in overrides.items()
    }
    token = forge(issuer.private_key, header_for(issuer), github_claims(issuer, now, **resolved))
    rejects(verifier, token, reason, now=now)


# -- jti -------------------------------------------------------------------------------------------


def test_replayed_token_is_refused(issuer: FakeOidcIssuer, verifier: IdTokenVerifier) -> None:
    token = issuer.mint(audience=AUDIENCE)
    verifier.verify(token)
    error = rejects(verifier, token, "replayed")
    assert "fresh ID token" in error.description


def test_jti_is_claimed_per_issuer_until_expiry(issuer: FakeOidcIssuer) -> None:
    store = InMemoryJtiStore(clock=lambda: 1000.0)
    assert store.claim_jti("https://a", "x", 1100)
    assert not store.claim_jti("https://a", "x", 1100)
    assert store.claim_jti("https://b", "x", 1100)
    later = InMemoryJtiStore(clock=lambda: 2000.0)
    assert later.claim_jti("https://a", "x", 1100)
    assert later.claim_jti("https://a", "x", 1100), "an expired record no longer blocks"


def test_a_refused_token_does_not_burn_its_jti(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier
) -> None:
    claims = github_claims(issuer)
    rejects(
        verifier,
        forge(issuer.private_key, header_for(issuer), {**claims, "aud": "x"}),
        "audience_mismatch",
    )
    assert (
        verifier.verify(forge(issuer.private_key, header_for(issuer), claims)).jti == claims["jti"]
    )


@pytest.mark.parametrize(
    ("jti", "reason"),
    [
        (None, "missing_claim"),
        ("", "invalid_claim"),
        ("x" * 129, "invalid_claim"),
        (7, "malformed"),
    ],
)
def test_missing_or_unusable_jti_is_refused(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier, jti: Any, reason: str
) -> None:
    rejects(
        verifier,
        forge(issuer.private_key, header_for(issuer), github_claims(issuer, jti=jti)),
        reason,
    )


# -- size and shape --------------------------------------------------------------------------------


def test_oversized_token_is_refused_before_parsing(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier
) -> None:
    padded = github_claims(issuer, workflow="w" * MAX_TOKEN_BYTES)
    rejects(verifier, forge(issuer.private_key, header_for(issuer), padded), "oversized")
    rejects(verifier, "a" * (10 * 1024 * 1024), "oversized")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "a..c",
        " eyJ.eyJ.sig",
        "eyJ.eyJ.sig\n",
        "eyJ=.eyJ.sig",
        "eyJ+.eyJ/.sig",
        "é.é.é",
    ],
)
def test_malformed_tokens_are_refused(verifier: IdTokenVerifier, token: str) -> None:
    rejects(verifier, token, "malformed")


def test_non_string_token_is_refused(verifier: IdTokenVerifier) -> None:
    with pytest.raises(InvalidIdToken) as caught:
        verifier.verify(b"a.b.c")  # type: ignore[arg-type]
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize(
    "payload",
    [b"[1, 2]", b'"text"', b"not json", b'{"exp": NaN}', b"\xff\xfe{}", b"{" * 5000 + b"}" * 5000],
)
def test_payload_that_is_not_a_strict_json_object_is_refused(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier, payload: bytes
) -> None:
    rejects(verifier, forge(issuer.private_key, header_for(issuer), payload), "malformed")


def test_duplicate_json_keys_are_refused_in_header_and_payload(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier
) -> None:
    claims = json.dumps(github_claims(issuer))
    payload = claims[:-1] + ', "repository_id": "1"}'
    rejects(
        verifier, forge(issuer.private_key, header_for(issuer), payload.encode()), "duplicate_key"
    )
    header = json.dumps(header_for(issuer))[:-1] + ', "alg": "none"}'
    rejects(verifier, forge(issuer.private_key, header.encode(), claims.encode()), "duplicate_key")


# -- claim values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("repository_id", 690001234),
        ("repository_id", "0690001234"),
        ("repository_id", " 690001234"),
        ("repository_id", "690001234 "),
        ("repository_id", "69000e4"),
        ("repository_id", "-1"),
        ("repository_owner_id", "+90001234"),
        ("run_id", "12_345"),
        ("run_attempt", "01"),
        ("run_attempt", "0"),
        ("check_run_id", 33445566778),
        ("actor_id", "5832 31"),
        ("repository_id", "1" * 21),
    ],
)
def test_ids_must_be_strings_of_digits(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier, claim: str, value: Any
) -> None:
    token = forge(issuer.private_key, header_for(issuer), github_claims(issuer, **{claim: value}))
    error = rejects(verifier, token, "invalid_claim")
    assert claim in error.description


@pytest.mark.parametrize(
    "claim", ["repository_id", "repository_owner_id", "run_id", "run_attempt", "sub", "repository"]
)
def test_required_claims_must_be_present(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier, claim: str
) -> None:
    token = forge(issuer.private_key, header_for(issuer), github_claims(issuer, **{claim: None}))
    error = rejects(verifier, token, "missing_claim")
    assert claim in error.description


def test_optional_ids_may_be_absent_or_empty(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier
) -> None:
    token = forge(
        issuer.private_key,
        header_for(issuer),
        github_claims(issuer, check_run_id=None, enterprise_id=""),
    )
    assert verifier.verify(token).check_run_id is None


@pytest.mark.parametrize(
    "text",
    ["main\n::set-output name=x::y", "a\x00b", "a\x1bb", "a\u202eb", "a\u2028b", "a\rb", "\ud800"],
)
def test_control_characters_in_claims_are_refused(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier, text: str
) -> None:
    claims = github_claims(issuer, ref=text)
    payload = json.dumps(claims).encode()  # ASCII with \u escapes, so even a lone surrogate encodes
    rejects(verifier, forge(issuer.private_key, header_for(issuer), payload), "control_character")
    renamed = {**github_claims(issuer), f"x{text}": "value"}
    rejects(
        verifier,
        forge(issuer.private_key, header_for(issuer), json.dumps(renamed).encode()),
        "control_character",
    )


@pytest.mark.parametrize(
    "overrides",
    [{"workflow": ["a"]}, {"workflow": {"a": 1}}, {"ref_protected": True}, {"run_number": 42}],
)
def test_claims_other_than_times_must_be_strings(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier, overrides: dict[str, Any]
) -> None:
    rejects(
        verifier,
        forge(issuer.private_key, header_for(issuer), github_claims(issuer, **overrides)),
        "invalid_claim",
    )


@pytest.mark.parametrize(
    ("repository", "owner"),
    [
        ("octo-org/octo-repo", "other-org"),
        ("octo-org", "octo-org"),
        ("octo-org/a/b", "octo-org"),
        ("../x", ".."),
    ],
)
def test_repository_must_be_owner_slash_name_of_its_owner(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier, repository: str, owner: str
) -> None:
    claims = github_claims(issuer, repository=repository, repository_owner=owner)
    rejects(verifier, forge(issuer.private_key, header_for(issuer), claims), "invalid_claim")


def test_verified_claims_expose_every_claim_read_only(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier
) -> None:
    claims = verifier.verify(issuer.mint(audience=AUDIENCE, environment="production"))
    assert claims.claims["environment"] == "production"
    assert claims.claims["exp"] == claims.exp
    with pytest.raises(TypeError):
        claims.claims["environment"] = "dev"  # type: ignore[index]


def test_second_encoding_of_the_same_signature_bytes_is_refused_before_pyjwt(
    issuer: FakeOidcIssuer, verifier: IdTokenVerifier
) -> None:
    token = issuer.mint(audience=AUDIENCE)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    # 256 signature bytes end in a character whose 4 low bits are unused.
    twin = token[:-1] + alphabet[(last & 0b110000) | (~last & 0b001111)]
    assert base64.urlsafe_b64decode(twin.split(".")[2] + "==") == base64.urlsafe_b64decode(
        token.split(".")[2] + "=="
    )
    error = rejects(verifier, twin, "malformed")
    assert "canonical" in error.description
    assert verifier.verify(token).iss == issuer.url
