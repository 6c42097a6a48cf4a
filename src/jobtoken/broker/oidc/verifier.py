"""Verification of GitHub Actions OIDC ID tokens, as an explicit sequence of checks.

Contract (the broker's ``POST /token`` calls this before anything else):

    config = VerifierConfig(
        issuers=(TrustedIssuer(GITHUB_ISSUER),), audience="https://tokens.example.com"
    )
    verifier = IdTokenVerifier(config, jti_store)  # jti_store: any JtiStore
    claims = verifier.verify(subject_token)  # VerifiedClaims, or raises InvalidIdToken

``verify(token, *, now=None)`` runs, in this order, and stops at the first failure:

1. size (at most ``MAX_TOKEN_BYTES`` = 16 KiB) and shape: three canonical
   base64url segments; header and payload are strict JSON objects (a repeated
   key, NaN or invalid UTF-8 is refused — PyJWT alone would keep the last of
   two duplicate keys);
2. header: ``alg`` is ``RS256``, ``kid`` present; ``jku``, ``x5u``, ``jwk``,
   ``x5c`` and ``crit`` are refused, as is any header other than
   ``alg kid typ x5t``;
3. the *unverified* ``iss`` is exactly one of the configured issuers — checked
   before any network call, so an unlisted issuer causes no outbound request;
4. the issuer's key with that ``kid`` (``jobtoken.broker.oidc.jwks``: discovery,
   https only, no redirects, timeouts, size caps, refetch on unknown ``kid`` at
   most once per interval);
5. the RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256, ``cryptography``) over the
   token's first two segments as sent; then the required claims ``iss aud exp iat
   nbf jti sub repository repository_id repository_owner repository_owner_id run_id
   run_attempt`` are present, ``iss`` is the issuer, ``aud`` is exactly the
   configured audience (a list is refused), ``sub`` and ``jti`` are strings (the
   checks PyJWT's ``decode`` made, in its order: written out, the token is parsed
   once, and cost a third of the time);
6. times against ``now`` (default: the clock) with ``leeway_seconds`` (≤ 60):
   not expired, ``nbf`` and ``iat`` not in the future, ``exp - iat`` at most
   ``max_token_lifetime_seconds`` (default 900);
7. claim values: times are integers; every other claim is a string without
   control characters; IDs (``repository_id repository_owner_id run_id
   run_attempt``) are strings of digits without a leading zero, and so are
   ``check_run_id actor_id run_number enterprise_id`` unless absent or empty;
   ``repository`` is ``owner/name`` with ``owner == repository_owner``;
8. ``jti`` is claimed in the ``JtiStore`` until ``exp + leeway``: a second use
   is refused (``verify(token, claim_jti=False)`` leaves this step to a caller that
   claims the ``jti`` in its own transaction).

``InvalidIdToken.reason`` is a stable machine code — ``oversized``,
``malformed``, ``duplicate_key``, ``forbidden_header``,
``unsupported_header``, ``unsupported_algorithm``, ``issuer_not_allowed``,
``jwks_unavailable``, ``unknown_key``, ``bad_signature``, ``missing_claim``,
``audience_mismatch``, ``invalid_claim``, ``control_character``,
``expired``, ``not_yet_valid``, ``issued_in_future``, ``lifetime_too_long``,
``replayed`` — for audit records and metrics. ``InvalidIdToken.description``
(also ``str(exc)``) tells the workflow author what to fix; it never contains
the token, a signature or a claim value.

``verify`` blocks on the network when keys must be fetched: from an async
server, call it in a worker thread (``jobtoken.broker.http.blocking``).

This module holds the sequence and its public API; the claim tables and step 7
are in ``jobtoken.broker.oidc.claims``, the issuer URLs of github.com and
GitHub Enterprise in ``jobtoken.broker.oidc.github_issuers``, ``InvalidIdToken`` in
``jobtoken.broker.oidc.errors``; every public name is importable from here.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.hashes import SHA256

from jobtoken.broker.config.model import looks_unconfigured
from jobtoken.broker.oidc.claims import REQUIRED_CLAIMS, VerifiedClaims, read_claims
from jobtoken.broker.oidc.errors import InvalidIdToken
from jobtoken.broker.oidc.github_issuers import GITHUB_ISSUER, ghes_issuer, github_enterprise_issuer
from jobtoken.broker.oidc.jwks import JwksCache, TrustedIssuer
from jobtoken.wire.strict_json import DuplicateKeyError, StrictJsonError, loads_strict

__all__ = [
    "GITHUB_ISSUER",
    "MAX_TOKEN_BYTES",
    "REPLAYED",
    "IdTokenVerifier",
    "InMemoryJtiStore",
    "InvalidIdToken",
    "JtiStore",
    "TrustedIssuer",
    "VerifiedClaims",
    "VerifierConfig",
    "ghes_issuer",
    "github_enterprise_issuer",
]

#: Largest ID token accepted, in bytes (GitHub's are about 2 KiB).
MAX_TOKEN_BYTES = 16 * 1024
#: Upper bound of ``VerifierConfig.leeway_seconds``.
MAX_LEEWAY_SECONDS = 60

ALLOWED_HEADERS = frozenset({"alg", "kid", "typ", "x5t"})
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})

_SEGMENT = r"[A-Za-z0-9_-]+"
_TOKEN_SHAPE = re.compile(rf"{_SEGMENT}\.{_SEGMENT}\.{_SEGMENT}")


#: the description of a replayed ID token (also when the issuing transaction finds it)
REPLAYED = "this ID token was already used; request a fresh ID token for each exchange"


class JtiStore(Protocol):
    """Remembers used ``jti`` values until they expire (the server keeps it in its database)."""

    def claim_jti(self, issuer: str, jti: str, expires_at: int) -> bool:
        """Record ``(issuer, jti)`` until ``expires_at`` (Unix seconds).

        Return True the first time, False if it is already recorded and not yet
        expired. Must be atomic across threads and processes sharing the store.
        """
        ...


class InMemoryJtiStore:
    """A ``JtiStore`` for tests and single-process use; forgets on restart.

    ``clock`` returns the current Unix time (tests pass a pinned clock).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], int] = {}

    def claim_jti(self, issuer: str, jti: str, expires_at: int) -> bool:
        with self._lock:
            now = self._clock()
            seen = self._seen.get((issuer, jti))
            if seen is not None and seen > now:
                return False
            if len(self._seen) >= 100_000:
                self._seen = {key: exp for key, exp in self._seen.items() if exp > now}
            self._seen[(issuer, jti)] = expires_at
            return True


@dataclass(frozen=True)
class VerifierConfig:
    """What the broker trusts. Every field has a safe default except issuers and audience."""

    issuers: tuple[TrustedIssuer, ...]
    #: The exact ``aud`` tokens must carry (the broker's URL is a good choice).
    audience: str
    leeway_seconds: int = 30
    #: Longest accepted ``exp - iat``; GitHub's tokens live 300 s.
    max_token_lifetime_seconds: int = 900
    #: An unknown ``kid`` refetches the issuer's keys at most this often.
    jwks_refetch_interval_seconds: float = 60.0
    #: A key set older than this is refetched before use.
    jwks_max_age_seconds: float = 3600.0
    connect_timeout_seconds: float = 3.0
    read_timeout_seconds: float = 5.0
    #: Size cap of the discovery document and of the JWKS.
    max_jwks_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        urls = [issuer.url for issuer in self.issuers]
        if not urls or len(set(urls)) != len(urls):
            raise ValueError("configure at least one issuer, each once")
        if not self.audience or self.audience.strip() != self.audience:
            raise ValueError("audience must be a non-empty string without surrounding spaces")
        if not 0 <= self.leeway_seconds <= MAX_LEEWAY_SECONDS:
            raise ValueError(f"leeway_seconds must be between 0 and {MAX_LEEWAY_SECONDS}")
        if self.max_token_lifetime_seconds <= 0:
            raise ValueError("max_token_lifetime_seconds must be positive")
        positive = (
            self.jwks_refetch_interval_seconds,
            self.jwks_max_age_seconds,
            self.connect_timeout_seconds,
            self.read_timeout_seconds,
            self.max_jwks_bytes,
        )
        if min(positive) <= 0:
            raise ValueError("JWKS intervals, timeouts and size caps must be positive")


class IdTokenVerifier:
    """Verifies ID tokens against a ``VerifierConfig`` (see the module docstring)."""

    def __init__(self, config: VerifierConfig, jti_store: JtiStore) -> None:
        self.config = config
        self._jti_store = jti_store
        self._key_sets = {
            issuer.url: JwksCache(
                issuer,
                refetch_interval=config.jwks_refetch_interval_seconds,
                max_age=config.jwks_max_age_seconds,
                connect_timeout=config.connect_timeout_seconds,
                read_timeout=config.read_timeout_seconds,
                max_document_bytes=config.max_jwks_bytes,
            )
            for issuer in config.issuers
        }

    def key_set(self, issuer_url: str) -> JwksCache:
        """The key cache of a configured issuer (to pin keys with ``load_document``)."""
        return self._key_sets[issuer_url]

    def verify(
        self, token: str, *, now: float | None = None, claim_jti: bool = True
    ) -> VerifiedClaims:
        """Steps 1 to 8. With ``claim_jti=False``, step 8 is the caller's: it claims the
        ``jti`` until ``single_use_until(claims)`` in the same transaction as what it
        does with the token (the token exchange does), and refuses with ``REPLAYED``."""
        now = time.time() if now is None else now
        parsed = _parse_token(token)
        header = parsed.header
        _check_header(header)
        issuer = parsed.payload.get("iss")
        if not isinstance(issuer, str) or issuer not in self._key_sets:
            raise InvalidIdToken(
                "issuer_not_allowed",
                "the token's issuer (iss) is not one this broker trusts; "
                "ask the broker's operators to allow your GitHub issuer",
            )
        kid = header["kid"]
        assert isinstance(kid, str)  # checked by _check_header
        key = self._key_sets[issuer].key_for(kid, now=now)  # JwksError: an InvalidIdToken
        claims = self._decode(parsed, key, issuer)
        self._check_times(claims, now)
        verified = read_claims(claims)
        if claim_jti and not self._jti_store.claim_jti(
            issuer, verified.jti, self.single_use_until(verified)
        ):
            raise InvalidIdToken("replayed", REPLAYED)
        return verified

    def single_use_until(self, verified: VerifiedClaims) -> int:
        """Until when the ``jti`` of a verified token must stay claimed: as long as the
        token itself could still pass step 6."""
        return verified.exp + self.config.leeway_seconds

    def _decode(self, token: ParsedToken, key: RSAPublicKey, issuer: str) -> Mapping[str, object]:
        """Step 5, written out with ``cryptography`` (the checks PyJWT's ``decode`` made
        with these options, in its order; the token is parsed once, in step 1)."""
        try:
            key.verify(token.signature, token.signing_input, PKCS1v15(), SHA256())
        except InvalidSignature:
            raise InvalidIdToken(
                "bad_signature", "the token's signature does not verify with the issuer's key"
            ) from None
        claims = token.payload
        for name in REQUIRED_CLAIMS:
            if claims.get(name) is None:
                raise InvalidIdToken(
                    "missing_claim", f"the token lacks the required claim {name!r}"
                )
        if claims["iss"] != issuer:
            raise InvalidIdToken("issuer_not_allowed", "the token's issuer (iss) is not trusted")
        if not isinstance(claims["aud"], str) or claims["aud"] != self.config.audience:
            raise InvalidIdToken("audience_mismatch", _audience_mismatch(self.config.audience))
        if not isinstance(claims["sub"], str) or not isinstance(claims["jti"], str):
            raise InvalidIdToken("malformed", "the token's sub and jti must be strings")
        return claims

    def _check_times(self, claims: Mapping[str, object], now: float) -> None:
        exp, iat, nbf = (claims[name] for name in ("exp", "iat", "nbf"))
        if not all(type(value) is int for value in (exp, iat, nbf)):
            raise InvalidIdToken("invalid_claim", "exp, iat and nbf must be integers")
        assert isinstance(exp, int)
        assert isinstance(iat, int)
        assert isinstance(nbf, int)
        leeway = self.config.leeway_seconds
        if exp <= now - leeway:
            raise InvalidIdToken("expired", "the token has expired: request a fresh ID token")
        if nbf > now + leeway:
            raise InvalidIdToken("not_yet_valid", "the token is not valid yet (nbf)")
        if iat > now + leeway:
            raise InvalidIdToken("issued_in_future", "the token was issued in the future (iat)")
        if exp <= iat or exp - iat > self.config.max_token_lifetime_seconds:
            raise InvalidIdToken(
                "lifetime_too_long",
                "the token lives longer than the broker accepts "
                f"({self.config.max_token_lifetime_seconds} s from iat to exp)",
            )


@dataclass(frozen=True, repr=False)
class ParsedToken:
    """A compact JWS taken apart (step 1): nothing of it is verified yet."""

    header: dict[str, object]
    payload: dict[str, object]
    signing_input: bytes
    signature: bytes


def _parse_token(token: object) -> ParsedToken:
    if not isinstance(token, str):
        raise InvalidIdToken("malformed", "the ID token must be a string")
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidIdToken("oversized", f"the ID token is larger than {MAX_TOKEN_BYTES} bytes")
    if not _TOKEN_SHAPE.fullmatch(token):
        raise InvalidIdToken("malformed", "the ID token is not a compact JWS (three segments)")
    header_b64, payload_b64, signature_b64 = token.split(".")
    signature = _b64decode(signature_b64)
    return ParsedToken(
        header=_json_segment(header_b64, "header"),
        payload=_json_segment(payload_b64, "payload"),
        signing_input=f"{header_b64}.{payload_b64}".encode("ascii"),
        signature=signature,
    )


def _b64decode(segment: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidIdToken("malformed", "the ID token is not valid base64url") from None
    # Two encodings of the same bytes would let an altered token verify.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != segment:
        raise InvalidIdToken("malformed", "the ID token is not canonical base64url")
    return raw


def _json_segment(segment: str, name: str) -> dict[str, object]:
    try:
        value = loads_strict(_b64decode(segment))
    except DuplicateKeyError:
        raise InvalidIdToken("duplicate_key", f"the token's {name} repeats a key") from None
    except StrictJsonError as exc:
        raise InvalidIdToken("malformed", f"the token's {name} is not strict JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidIdToken("malformed", f"the token's {name} is not a JSON object")
    return value


def _check_header(header: Mapping[str, object]) -> None:
    if FORBIDDEN_HEADERS & header.keys():
        raise InvalidIdToken(
            "forbidden_header", "the token names its own key (jku, x5u, jwk, x5c or crit header)"
        )
    if not header.keys() <= ALLOWED_HEADERS:
        raise InvalidIdToken("unsupported_header", "the token's header has unsupported fields")
    if header.get("alg") != "RS256":
        raise InvalidIdToken("unsupported_algorithm", "only RS256 tokens are accepted")
    kid = header.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= 128:
        raise InvalidIdToken("malformed", "the token's header has no usable key id (kid)")
    if header.get("typ", "JWT") != "JWT":
        raise InvalidIdToken("unsupported_header", "the token's typ must be JWT")


def _audience_mismatch(audience: str) -> str:
    """What to fix when a token's ``aud`` is not ``audience``: the workflow's audience,
    unless the broker's own audience is still an example URL (then the broker's)."""
    if looks_unconfigured(audience):
        return (
            f"the token's audience (aud) must be exactly {audience!r}, an example URL: this "
            "broker is not configured yet, not the workflow; its operators must set "
            "[server] public_url (or [oidc] audience) to the URL jobs reach it at"
        )
    return (
        f"the token's audience (aud) must be exactly {audience!r}: request the ID token "
        "with that audience"
    )
