"""Forged, bent and replayed ID tokens at ``POST /token``: each is refused with HTTP
400 ``invalid_grant`` and the verifier's exact reason code in a ``denied`` audit record,
and no token row is written (the in-process app: the same code path as the server)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from support.adversary import StoreCounts, b64, forge, last_audit
from support.oidc_issuer import NBF_SKEW

from .conftest import App

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
#: RFC 6749 §5.2's error_description charset: nothing a log could take for a command
DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Jwt:
    """Builds tokens for the app's issuer: its claims and key, any header or bytes."""

    app: App

    @property
    def key(self) -> rsa.RSAPrivateKey:
        return self.app.process.issuer.private_key

    def header(self, **changes: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": "RS256", "kid": self.app.process.issuer.kid, "typ": "JWT"}
        header.update(changes)
        return {k: v for k, v in header.items() if v is not None}

    def claims(self, **changes: Any) -> dict[str, Any]:
        process, now = self.app.process, int(time.time())
        claims: dict[str, Any] = {
            "jti": hashlib.sha256(str(time.monotonic_ns()).encode()).hexdigest(),
            **process.issuer.claims,
            "aud": process.issuer_url,
            "iss": process.issuer.url,
            "iat": now,
            "nbf": now - NBF_SKEW,
            "exp": now + 300,
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        return forge(self.key, header or self.header(), self.claims(**claims))

    def raw(self, header: bytes, payload: bytes, key: rsa.RSAPrivateKey | None = None) -> str:
        return forge(key or self.key, header, payload)

    def segments(self) -> list[str]:
        return self.token().split(".")


def _hs256_with_public_key(j: Jwt) -> str:
    """The classic confusion: HMAC keyed with the issuer's public key (PEM)."""
    pem = j.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{b64(json.dumps(j.header(alg='HS256')).encode())}.{b64(json.dumps(j.claims()).encode())}"
    )
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _rs512(j: Jwt) -> str:
    signing_input = (
        f"{b64(json.dumps(j.header(alg='RS512')).encode())}.{b64(json.dumps(j.claims()).encode())}"
    )
    signature = j.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA512())
    return f"{signing_input}.{b64(signature)}"


def _alg_none(j: Jwt, signature: str) -> str:
    head, body, _ = j.token(j.header(alg="none")).split(".")
    return f"{head}.{body}.{signature}"


def _swap_signature(j: Jwt) -> str:
    head, body, _ = j.segments()
    return f"{head}.{body}.{j.segments()[2]}"  # another token's (valid) signature


def _altered_payload(j: Jwt) -> str:
    head, _, signature = j.segments()
    altered = json.dumps(j.claims(actor="mallory")).encode()
    return f"{head}.{b64(altered)}.{signature}"


def _non_canonical_last_char(j: Jwt) -> str:
    """Same signature bytes, other base64url text (unused low bits set)."""
    head, body, signature = j.segments()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused = {2: 15, 3: 3}[len(signature) % 4]  # 256 bytes: 342 chars, 4 unused bits
    last = alphabet.index(signature[-1])
    return f"{head}.{body}.{signature[:-1]}{alphabet[last | unused]}"


def _standard_alphabet(j: Jwt) -> str:
    while "_" not in (token := j.token()) and "-" not in token:
        pass
    return token.replace("-", "+").replace("_", "/")


def _padded(j: Jwt) -> str:
    head, body, signature = j.segments()
    return f"{head}{'=' * (-len(head) % 4) or '=='}.{body}.{signature}"


def _truncated_signature(j: Jwt) -> str:
    head, body, signature = j.segments()
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    return f"{head}.{body}.{b64(raw[:-3])}"


def _duplicate_in_header(j: Jwt) -> str:
    kid = j.app.process.issuer.kid
    header = f'{{"alg":"RS256","kid":"{kid}","alg":"RS256"}}'.encode()
    return j.raw(header, json.dumps(j.claims()).encode())


def _duplicate_in_payload(j: Jwt) -> str:
    payload = json.dumps(j.claims())[:-1] + ', "repository_id": "1"}'
    return j.raw(json.dumps(j.header()).encode(), payload.encode())


Case = Callable[[Jwt], str]
CASES: list[Any] = [
    # -- algorithm ---------------------------------------------------------------
    pytest.param(lambda j: _alg_none(j, ""), "malformed", id="alg-none-empty-signature"),
    pytest.param(lambda j: _alg_none(j, "c2ln"), "unsupported_algorithm", id="alg-none-signed"),
    pytest.param(_hs256_with_public_key, "unsupported_algorithm", id="alg-hs256-public-key-secret"),
    pytest.param(_rs512, "unsupported_algorithm", id="alg-rs512"),
    pytest.param(
        lambda j: j.token(j.header(alg="rs256")), "unsupported_algorithm", id="alg-lowercase"
    ),
    pytest.param(lambda j: j.token(j.header(alg=None)), "unsupported_algorithm", id="alg-missing"),
    # -- kid ---------------------------------------------------------------------
    pytest.param(lambda j: j.token(j.header(kid="not-a-key")), "unknown_key", id="kid-unknown"),
    pytest.param(
        lambda j: j.token(j.header(kid="k\u00e9y-\u0431")), "unknown_key", id="kid-non-ascii"
    ),
    pytest.param(lambda j: j.token(j.header(kid="k" * 129)), "malformed", id="kid-huge"),
    pytest.param(lambda j: j.token(j.header(kid="")), "malformed", id="kid-empty"),
    pytest.param(lambda j: j.token(j.header(kid=7)), "malformed", id="kid-number"),
    pytest.param(lambda j: j.token(j.header(kid=None)), "malformed", id="kid-missing"),
    # -- headers naming their own key, or unknown --------------------------------
    pytest.param(
        lambda j: j.token(j.header(jku="https://evil.example/jwks")),
        "forbidden_header",
        id="hdr-jku",
    ),
    pytest.param(
        lambda j: j.token(j.header(x5u="https://evil.example/c.pem")),
        "forbidden_header",
        id="hdr-x5u",
    ),
    pytest.param(
        lambda j: j.token(j.header(jwk={"kty": "RSA", "n": "AQAB", "e": "AQAB"})),
        "forbidden_header",
        id="hdr-jwk",
    ),
    pytest.param(lambda j: j.token(j.header(x5c=["MIIB"])), "forbidden_header", id="hdr-x5c"),
    pytest.param(lambda j: j.token(j.header(crit=["exp"])), "forbidden_header", id="hdr-crit"),
    pytest.param(lambda j: j.token(j.header(cty="JWT")), "unsupported_header", id="hdr-cty-nested"),
    pytest.param(
        lambda j: j.token(j.header(typ="at+jwt")), "unsupported_header", id="hdr-typ-other"
    ),
    # -- audience ----------------------------------------------------------------
    pytest.param(
        lambda j: j.token(aud="https://other-broker.example"),
        "audience_mismatch",
        id="aud-other-service",
    ),
    pytest.param(
        lambda j: j.token(aud=[j.app.process.issuer_url]), "audience_mismatch", id="aud-list"
    ),
    pytest.param(
        lambda j: j.token(aud=j.app.process.issuer_url + "/"),
        "audience_mismatch",
        id="aud-trailing-slash",
    ),
    pytest.param(
        lambda j: j.token(aud="https://github.com/octo-org"),
        "audience_mismatch",
        id="aud-github-default",
    ),
    pytest.param(lambda j: j.token(aud=None), "missing_claim", id="aud-missing"),
    # -- issuer ------------------------------------------------------------------
    pytest.param(
        lambda j: j.token(iss="https://token.actions.githubusercontent.com"),
        "issuer_not_allowed",
        id="iss-unlisted-github",
    ),
    pytest.param(
        lambda j: j.token(iss=j.app.process.issuer.url + "/"),
        "issuer_not_allowed",
        id="iss-trailing-slash",
    ),
    pytest.param(
        lambda j: j.token(iss=j.app.process.issuer.url.replace("http:", "https:")),
        "issuer_not_allowed",
        id="iss-https-for-http",
    ),
    pytest.param(
        lambda j: j.token(iss=j.app.process.issuer.url.upper()),
        "issuer_not_allowed",
        id="iss-upper-case",
    ),
    pytest.param(
        lambda j: j.token(iss=[j.app.process.issuer.url]), "issuer_not_allowed", id="iss-list"
    ),
    pytest.param(lambda j: j.token(iss=None), "issuer_not_allowed", id="iss-missing"),
    # -- times -------------------------------------------------------------------
    pytest.param(
        lambda j: j.token(exp=int(time.time()) - 100, iat=int(time.time()) - 400),
        "expired",
        id="time-expired",
    ),
    pytest.param(
        lambda j: j.token(nbf=int(time.time()) + 600), "not_yet_valid", id="time-nbf-future"
    ),
    pytest.param(
        lambda j: j.token(iat=int(time.time()) + 120, exp=int(time.time()) + 400),
        "issued_in_future",
        id="time-iat-future",
    ),
    pytest.param(
        lambda j: j.token(exp=int(time.time()) + 3600), "lifetime_too_long", id="time-lifetime-1h"
    ),
    pytest.param(
        lambda j: j.token(exp=int(time.time()), iat=int(time.time())),
        "lifetime_too_long",
        id="time-exp-equals-iat",
    ),
    pytest.param(
        lambda j: j.token(exp=float(int(time.time()) + 300)), "invalid_claim", id="time-exp-float"
    ),
    pytest.param(
        lambda j: j.token(exp=str(int(time.time()) + 300)), "invalid_claim", id="time-exp-string"
    ),
    pytest.param(lambda j: j.token(exp=True), "invalid_claim", id="time-exp-bool"),
    # -- encoding ----------------------------------------------------------------
    pytest.param(_duplicate_in_header, "duplicate_key", id="json-duplicate-header-key"),
    pytest.param(_duplicate_in_payload, "duplicate_key", id="json-duplicate-payload-key"),
    pytest.param(
        lambda j: j.raw(json.dumps(j.header()).encode(), b'{"exp": NaN}'),
        "malformed",
        id="json-nan",
    ),
    pytest.param(
        lambda j: j.raw(b'["RS256"]', json.dumps(j.claims()).encode()),
        "malformed",
        id="json-header-array",
    ),
    pytest.param(
        lambda j: j.raw(json.dumps(j.header()).encode(), b'"a string"'),
        "malformed",
        id="json-payload-string",
    ),
    pytest.param(
        lambda j: j.raw(json.dumps(j.header()).encode(), b"\xff\xfe{}"),
        "malformed",
        id="json-invalid-utf8",
    ),
    pytest.param(_padded, "malformed", id="b64-padding"),
    pytest.param(_standard_alphabet, "malformed", id="b64-plus-slash"),
    pytest.param(_non_canonical_last_char, "malformed", id="b64-non-canonical-bits"),
    # -- signature and shape -----------------------------------------------------
    pytest.param(_swap_signature, "bad_signature", id="sig-of-another-token"),
    pytest.param(_altered_payload, "bad_signature", id="sig-payload-altered"),
    pytest.param(
        lambda j: forge(OTHER_KEY, j.header(), j.claims()),
        "bad_signature",
        id="sig-other-key-same-kid",
    ),
    pytest.param(lambda j: ".".join(j.segments()[:2]), "malformed", id="shape-two-segments"),
    pytest.param(lambda j: j.token() + "." + b64(b"x"), "malformed", id="shape-four-segments"),
    pytest.param(_truncated_signature, "bad_signature", id="shape-truncated-signature"),
    pytest.param(
        lambda j: j.token().rpartition(".")[0] + ".", "malformed", id="shape-empty-signature"
    ),
    pytest.param(lambda j: " " + j.token(), "malformed", id="shape-leading-space"),
    pytest.param(lambda j: j.token(actor="a" * 17_000), "oversized", id="shape-oversized"),
    # -- claim values ------------------------------------------------------------
    pytest.param(lambda j: j.token(actor="octo\x00cat"), "control_character", id="claim-nul"),
    pytest.param(
        lambda j: j.token(workflow="CI\n::set-output name=x::y"),
        "control_character",
        id="claim-newline-command",
    ),
    pytest.param(
        lambda j: j.token(ref="refs/heads/\u202eniam"),
        "control_character",
        id="claim-bidi-override",
    ),
    pytest.param(
        lambda j: j.token(actor="octo\u2028cat"), "control_character", id="claim-line-separator"
    ),
    pytest.param(
        lambda j: j.token(actor="octo\x1b[31mcat"), "control_character", id="claim-ansi-escape"
    ),
    pytest.param(lambda j: j.token(**{"x\x00y": "1"}), "control_character", id="claim-name-nul"),
    pytest.param(
        lambda j: j.token(repository_id="0690001234"), "invalid_claim", id="rid-leading-zero"
    ),
    pytest.param(
        lambda j: j.token(repository_id="69000123x"), "invalid_claim", id="rid-non-digits"
    ),
    pytest.param(lambda j: j.token(repository_id=690001234), "invalid_claim", id="rid-number"),
    pytest.param(
        lambda j: j.token(repository_id="\uff16\uff19\uff10"),
        "invalid_claim",
        id="rid-fullwidth-digits",
    ),
    pytest.param(lambda j: j.token(repository_id="-690001234"), "invalid_claim", id="rid-negative"),
    pytest.param(lambda j: j.token(run_attempt="0"), "invalid_claim", id="run-attempt-zero"),
    pytest.param(
        lambda j: j.token(repository="evil-org/octo-repo"),
        "invalid_claim",
        id="repo-owner-mismatch",
    ),
    pytest.param(lambda j: j.token(repository="octo-org"), "invalid_claim", id="repo-no-slash"),
    pytest.param(
        lambda j: j.token(repository="octo-org/octo-repo/../x"),
        "invalid_claim",
        id="repo-traversal",
    ),
    pytest.param(lambda j: j.token(sub=["repo:octo-org/octo-repo"]), "malformed", id="sub-list"),
    pytest.param(lambda j: j.token(jti=None), "missing_claim", id="jti-missing"),
    pytest.param(lambda j: j.token(repository_id=None), "missing_claim", id="rid-missing"),
]


def _post(app: App, subject_token: str) -> tuple[int, dict[str, Any]]:
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": ID_TOKEN_TYPE,
        "resource": "contacts",
        "scope": "contacts.read",
    }
    response = app.client.post("/token", data=form)
    return response.status_code, response.json()


@pytest.mark.parametrize(("make", "reason"), CASES)
def test_a_forged_id_token_is_invalid_grant_and_issues_nothing(
    app: App, make: Case, reason: str
) -> None:
    subject_token = make(Jwt(app))
    before = StoreCounts.of(app.process.db_path)
    status, body = _post(app, subject_token)
    after = StoreCounts.of(app.process.db_path)
    assert (status, body["error"]) == (400, "invalid_grant"), body
    assert "access_token" not in body
    assert DESCRIPTION.fullmatch(body["error_description"])
    assert "::" not in body["error_description"]
    assert (after.tokens, after.denied) == (before.tokens, before.denied + 1)
    audited = last_audit(app.process.db_path)
    assert (audited["decision"], audited["reason"]) == ("denied", reason)


@pytest.mark.parametrize(
    "subject_token_type", [ID_TOKEN_TYPE, "urn:ietf:params:oauth:token-type:jwt"]
)
def test_a_replayed_id_token_is_refused_the_second_time(app: App, subject_token_type: str) -> None:
    token = Jwt(app).token()
    assert _post(app, token)[0] == 200
    before = StoreCounts.of(app.process.db_path)
    status, body = _post(app, token)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert StoreCounts.of(app.process.db_path).tokens == before.tokens
    assert last_audit(app.process.db_path)["reason"] == "replayed"


def test_the_signature_check_is_not_a_formality(app: App) -> None:
    """The baseline every case above bends: an untouched forged token is issued."""
    status, body = _post(app, Jwt(app).token())
    assert status == 200, body
    assert body["scope"] == "contacts.read"
