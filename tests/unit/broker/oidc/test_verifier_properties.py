"""Properties of the ID-token front end (``verify.py``, ``id_token_claims.py``).

Whatever the token string, its segments, its header or its claims:

1. ``verify`` raises ``InvalidIdToken`` and nothing else, and makes no network call;
2. a token that is not exactly what the issuer's key signed never verifies: arbitrary
   strings, every mangling of a valid token, and any header and claims signed by
   another key;
3. arbitrary header and claim JSON signed by the issuer's own key verifies only when it
   passes every check the module docstring lists (:func:`documented_checks`, written
   from that docstring), and the claims handed out are exactly the token's.

``make test`` runs the bounded hypothesis profile; ``make fuzz`` the long one
(tests/conftest.py).
"""

from __future__ import annotations

import base64
import functools
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import event, example, given
from hypothesis import strategies as st

from jobtoken.broker.oidc.verifier import (
    MAX_TOKEN_BYTES,
    IdTokenVerifier,
    InMemoryJtiStore,
    InvalidIdToken,
    TrustedIssuer,
    VerifierConfig,
)
from support.loopback_guard import loopback_only

ISSUER = "https://token.actions.githubusercontent.com"
AUDIENCE = "https://broker.test"
KID = "key-1"
NOW = 1_800_000_000
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

CLAIMS: dict[str, Any] = {
    "iss": ISSUER,
    "aud": AUDIENCE,
    "exp": NOW + 240,
    "iat": NOW - 60,
    "nbf": NOW - 60,
    "jti": "7f0d8b0e-6f0a-4a57-a1c5-4f1e2f0d0c11",
    "sub": "repo:octo-org/app:ref:refs/heads/main",
    "repository": "octo-org/app",
    "repository_id": "690001234",
    "repository_owner": "octo-org",
    "repository_owner_id": "90001234",
    "run_id": "9000000001",
    "run_attempt": "1",
    "check_run_id": "",
    "actor_id": "1234",
    "ref": "refs/heads/main",
    "event_name": "push",
}
HEADER: dict[str, Any] = {"alg": "RS256", "kid": KID, "typ": "JWT"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwks() -> bytes:
    numbers = KEY.public_key().public_numbers()
    size = (numbers.n.bit_length() + 7) // 8
    entry = {
        "kty": "RSA",
        "kid": KID,
        "use": "sig",
        "alg": "RS256",
        "n": b64(numbers.n.to_bytes(size, "big")),
        "e": b64(numbers.e.to_bytes(3, "big")),
    }
    return json.dumps({"keys": [entry]}).encode()


def sign(header: bytes, payload: bytes, key: rsa.RSAPrivateKey = KEY) -> str:
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


VALID = sign(dumps(HEADER), dumps(CLAIMS))


def non_canonical_twin(segment: str) -> str:
    """`segment` with its last character changed so that it decodes to the same bytes."""
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    for char in _B64URL:
        twin = segment[:-1] + char
        if twin != segment and base64.urlsafe_b64decode(twin + "=" * (-len(twin) % 4)) == raw:
            return twin
    raise AssertionError("no twin")  # pragma: no cover


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_HEAD, _BODY, _SIGNATURE = VALID.split(".")
#: the same signature bytes, written differently: PyJWT alone would accept it
TWIN_SIGNATURE = f"{_HEAD}.{_BODY}.{non_canonical_twin(_SIGNATURE)}"


@pytest.fixture(scope="module")
def verifier() -> Iterator[IdTokenVerifier]:
    """A verifier with the issuer's keys pinned: an unknown kid refetches only after a
    minute, and no test moves the clock, so nothing here may reach the network."""
    config = VerifierConfig(issuers=(TrustedIssuer(ISSUER),), audience=AUDIENCE)
    made = IdTokenVerifier(config, InMemoryJtiStore(clock=lambda: NOW))
    made.key_set(ISSUER).load_document(jwks(), now=NOW)
    with loopback_only() as connections:
        yield made
    assert connections == []


def outcome(verifier: IdTokenVerifier, token: str) -> Mapping[str, object] | InvalidIdToken:
    """The verified claims, or the refusal (claim_jti=False: one token may be tried twice)."""
    try:
        return verifier.verify(token, now=NOW, claim_jti=False).claims
    except InvalidIdToken as exc:
        refusal = exc
    assert refusal.reason
    assert str(refusal) == refusal.description
    for segment in token.split("."):
        if len(segment) >= 12:
            assert segment not in refusal.description, "the refusal echoes the token"
    return refusal


def test_the_valid_token_verifies(verifier: IdTokenVerifier) -> None:
    """The base every mangling starts from is itself accepted."""
    assert outcome(verifier, VALID) == CLAIMS


# -- 1 and 2: nothing but InvalidIdToken, and never a verification ---------------------------

token_like = st.lists(
    st.text(alphabet=_B64URL + "=+/ \n", max_size=60), min_size=0, max_size=5
).map(".".join)


@given(token=st.one_of(st.text(max_size=300), token_like, st.binary(max_size=64).map(repr)))
@example(token="")
@example(token="a.b.c")
@example(token="e30.e30.")
@example(token="x" * (MAX_TOKEN_BYTES + 1))
@example(token=VALID + "\n")
@example(token=VALID.replace(".", "..", 1))
def test_an_arbitrary_string_never_verifies(verifier: IdTokenVerifier, token: str) -> None:
    assert isinstance(outcome(verifier, token), InvalidIdToken)


@st.composite
def mangled(draw: st.DrawFn) -> str:
    """VALID with segments replaced, swapped, cut, padded or a character changed."""
    parts = VALID.split(".")
    for _ in range(draw(st.integers(1, 3))):
        action = draw(
            st.sampled_from(
                ["char", "last", "segment", "swap", "cut", "pad", "insert", "drop", "case"]
            )
        )
        index = draw(st.integers(0, len(parts) - 1))
        part = parts[index]
        if action == "char" and part:
            at = draw(st.integers(0, len(part) - 1))
            parts[index] = part[:at] + draw(st.sampled_from(_B64URL + "=.+/")) + part[at + 1 :]
        elif action == "last" and part:  # the last character also carries unused bits
            parts[index] = part[:-1] + draw(st.sampled_from(_B64URL))
        elif action == "segment":
            parts[index] = draw(st.text(alphabet=_B64URL, max_size=40))
        elif action == "swap":
            other = draw(st.integers(0, len(parts) - 1))
            parts[index], parts[other] = parts[other], parts[index]
        elif action == "cut":
            parts[index] = part[: draw(st.integers(0, len(part)))]
        elif action == "pad":
            parts[index] = part + "=" * draw(st.integers(1, 3))
        elif action == "insert":
            parts.insert(index, draw(st.text(alphabet=_B64URL, max_size=10)))
        elif action == "drop" and len(parts) > 1:
            del parts[index]
        elif action == "case":
            parts[index] = part.swapcase()
    return ".".join(parts)


@given(token=mangled())
@example(token=TWIN_SIGNATURE)
def test_a_mangled_token_never_verifies(verifier: IdTokenVerifier, token: str) -> None:
    if token != VALID:
        assert isinstance(outcome(verifier, token), InvalidIdToken)


@functools.cache  # one strategy, however often a composite asks: hypothesis sets up each anew
def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False),
        st.text(max_size=20),
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    )


#: a claim value near what GitHub sends, or anything JSON holds
claim_values = st.one_of(
    json_values(),
    st.sampled_from(
        [
            "",
            "0",
            "0123",
            "12345678901234567890123",
            "octo-org/app",
            "OCTO-ORG/app",
            "other/app",
            "octo-org/app/x",
            AUDIENCE,
            [AUDIENCE],
            ISSUER,
            "x\n",
            "x\u2028",
            "x\u202e",
            "\ud800",
            NOW,
            NOW + 60,
            NOW - 3600,
            NOW + 10_000,
            True,
            float(NOW + 60),
        ]
    ),
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """Claims near the valid ones (some changed, removed or added), or anything at all."""
    kind = draw(st.integers(0, 9))
    if kind == 7:
        return draw(st.binary(max_size=200))
    if kind == 8:
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    if kind == 9:
        return dumps(draw(json_values()))
    claims = dict(CLAIMS)
    for name in draw(st.lists(st.sampled_from(sorted(CLAIMS)), max_size=3, unique=True)):
        if draw(st.booleans()):
            claims[name] = draw(claim_values)
        else:
            del claims[name]
    claims.update(draw(st.dictionaries(st.text(max_size=8), claim_values, max_size=2)))
    document = dumps(claims)
    if draw(st.integers(0, 9)) == 3:  # a repeated key, which json.dumps cannot write
        document = document[:-1] + b', "sub": "repo:other/app:ref:refs/heads/main"}'
    return document


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    """Mostly the issuer's header (so that the claims are what is tested), else altered."""
    kind = draw(st.integers(0, 9))
    if kind <= 5:
        return dumps(HEADER)
    if kind == 6:
        return draw(st.binary(max_size=60) | st.text(max_size=60).map(str.encode))
    header = dict(HEADER)
    for name in draw(st.lists(st.sampled_from(sorted(HEADER)), max_size=2, unique=True)):
        del header[name]
    extra = st.sampled_from(["jku", "x5u", "jwk", "x5c", "crit", "x5t", "cty", "b64", "zip"])
    header.update(draw(st.dictionaries(extra | st.text(max_size=5), json_values(), max_size=2)))
    header.update(
        draw(
            st.dictionaries(
                st.sampled_from(["alg", "kid", "typ"]),
                st.sampled_from(["RS256", "rs256", "none", "HS256", "ES256", KID, "JWT", "jwt"])
                | json_values(),
                max_size=2,
            )
        )
    )
    return dumps(header)


@given(header=headers(), payload=payloads())
def test_claims_signed_by_another_key_never_verify(
    verifier: IdTokenVerifier, header: bytes, payload: bytes
) -> None:
    assert isinstance(outcome(verifier, sign(header, payload, OTHER_KEY)), InvalidIdToken)


# -- 3: signed by the issuer: verified only when every documented check passes ----------------

_ID_DIGITS = re.compile(r"[1-9][0-9]{0,19}")
_OWNER_NAME = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
REQUIRED = [
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "sub",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "run_id",
    "run_attempt",
]


def _plain_json(raw: bytes) -> object:
    """The JSON value, or None when it is not strict JSON (repeated key, NaN, bad UTF-8)."""

    def no_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
        if len({key for key, _ in pairs}) != len(pairs):
            raise ValueError("repeated key")
        return dict(pairs)

    try:
        return json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=no_repeats,
            parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)),
        )
    except (ValueError, RecursionError):
        return None


def _controlled(text: str) -> bool:
    return any(
        unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs")
        or c in "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
        for c in text
    )


def documented_checks(header_raw: bytes, payload_raw: bytes) -> bool:
    """Steps 1, 2, 3 and 5 to 7 of verify.py's docstring, for a token the issuer signed."""
    header, claims = _plain_json(header_raw), _plain_json(payload_raw)
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return False
    if not set(header) <= {"alg", "kid", "typ", "x5t"} or header.get("alg") != "RS256":
        return False
    if header.get("kid") != KID or header.get("typ", "JWT") != "JWT":
        return False
    if any(claims.get(name) is None for name in REQUIRED) or len(claims) > 100:
        return False
    if claims["iss"] != ISSUER or claims["aud"] != AUDIENCE:
        return False
    times = [claims[name] for name in ("exp", "iat", "nbf")]
    if not all(type(t) is int for t in times):
        return False
    exp, iat, nbf = times
    if exp <= NOW - 30 or nbf > NOW + 30 or iat > NOW + 30 or not 0 < exp - iat <= 900:
        return False
    strings = {k: v for k, v in claims.items() if k not in ("exp", "iat", "nbf")}
    if not all(isinstance(v, str) for v in strings.values()):
        return False
    if any(_controlled(k) or _controlled(v) for k, v in strings.items()):
        return False
    for name in ("repository_id", "repository_owner_id", "run_id", "run_attempt"):
        if not _ID_DIGITS.fullmatch(strings[name]):
            return False
    for name in ("check_run_id", "actor_id", "run_number", "enterprise_id"):
        if strings.get(name) and not _ID_DIGITS.fullmatch(strings[name]):
            return False
    owner = _OWNER_NAME.fullmatch(strings["repository"])
    if owner is None or owner.group(1) != strings["repository_owner"]:
        return False
    return 0 < len(strings["jti"]) <= 128


@given(header=headers(), payload=payloads())
@example(header=dumps(HEADER), payload=dumps(CLAIMS))
@example(header=dumps({**HEADER, "x5t": "abc"}), payload=dumps(CLAIMS))
@example(header=dumps(HEADER), payload=dumps({**CLAIMS, "exp": float(NOW + 60)}))
@example(header=dumps(HEADER), payload=dumps({**CLAIMS, "exp": True}))
@example(header=dumps(HEADER), payload=dumps({**CLAIMS, "aud": [AUDIENCE]}))
@example(header=dumps(HEADER), payload=dumps({**CLAIMS, "ref": "refs/heads/x\u2028"}))
@example(header=dumps(HEADER), payload=dumps({**CLAIMS, "actor": "octo\u202ecat"}))
@example(header=dumps({**HEADER, "typ": "at+jwt"}), payload=dumps(CLAIMS))
@example(header=dumps(HEADER), payload=dumps({**CLAIMS, "exp": 10**30}))
def test_issuer_signed_claims_verify_exactly_when_every_documented_check_passes(
    verifier: IdTokenVerifier, header: bytes, payload: bytes
) -> None:
    token = sign(header, payload)
    result = outcome(verifier, token)
    expected = documented_checks(header, payload)
    assert (not isinstance(result, InvalidIdToken)) == expected, result
    event("verified" if expected else f"refused: {getattr(result, 'reason', '')}")
    if expected:
        assert result == json.loads(payload)


@given(header=headers())
def test_any_header_over_valid_claims_verifies_only_as_documented(
    verifier: IdTokenVerifier, header: bytes
) -> None:
    """The header checks alone: the claims are the valid ones."""
    payload = dumps(CLAIMS)
    result = outcome(verifier, sign(header, payload))
    assert (not isinstance(result, InvalidIdToken)) == documented_checks(header, payload), result


@given(payload=payloads())
def test_any_claims_under_the_valid_header_verify_only_as_documented(
    verifier: IdTokenVerifier, payload: bytes
) -> None:
    """The claim checks alone: the header is the issuer's."""
    header = dumps(HEADER)
    result = outcome(verifier, sign(header, payload))
    assert (not isinstance(result, InvalidIdToken)) == documented_checks(header, payload), result
