"""Broker-signed, job-bound access tokens and the keys that sign them.

A minted token is a JWT (RFC 9068 shape, ``typ: at+jwt``) signed with Ed25519
(``EdDSA``) or ES256: ``iss`` is the broker, ``aud`` the connector, ``scope`` the granted
scopes, ``exp``/``iat``/``nbf``/``jti``, and the job binding ``repository_id``,
``run_id``, ``run_attempt``, ``check_run_id``. ``client_id`` (required by RFC 9068
§2.2) names the OAuth client that asked for the token: the job's repository, by its
immutable id, as ``github:repository:<repository_id>`` (the job itself is in the binding
claims; the repository is what a resource server allow-lists). Any JWT library verifies
it through ``GET /.well-known/jwks.json``.

Signing keys live in the store, sealed by the envelope. :meth:`SigningKeys.rotate` makes a
fresh key current; the former current key becomes "previous" and stays in the JWKS (so
tokens it signed keep verifying until they expire); the one before is retired. Every
broker process re-reads the keys at most every ``refresh_seconds``, so a rotation done
by the CLI reaches running workers without a restart.

Public API: :class:`SigningKeys`, :class:`TokenSigner`, :class:`JobBinding`,
:class:`MintedToken`, :class:`InvalidAccessToken`, :data:`ALGORITHMS`.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from jobtoken.broker.errors import BrokerFailure
from jobtoken.broker.secrets.envelope import Envelope
from jobtoken.broker.store import SigningKeyRow, SqlStore, sealed_record_id

__all__ = [
    "ALGORITHMS",
    "InvalidAccessToken",
    "JobBinding",
    "MintedToken",
    "SigningKeys",
    "TokenSigner",
]

ALGORITHMS = ("EdDSA", "ES256")
TOKEN_TYPE = "at+jwt"  # noqa: S105 - the JWT "typ" of RFC 9068
_MAX_TOKEN_BYTES = 8 * 1024
_REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "nbf", "jti", "scope", "repository_id", "run_id"]

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


class InvalidAccessToken(BrokerFailure):
    """A presented broker token is not one this broker issued, or no longer valid."""

    code, http_status = "invalid_token", 401


@dataclass(frozen=True)
class JobBinding:
    """The job a token is bound to (from the verified OIDC claims)."""

    repository_id: str
    run_id: str
    run_attempt: str
    check_run_id: str  # "" where the ID token had none

    @property
    def client_id(self) -> str:
        """RFC 9068 ``client_id``: the repository that requested the token."""
        return f"github:repository:{self.repository_id}"

    def claims(self) -> dict[str, str]:
        out = {
            "repository_id": self.repository_id,
            "run_id": self.run_id,
            "run_attempt": self.run_attempt,
        }
        if self.check_run_id:
            out["check_run_id"] = self.check_run_id
        return out


@dataclass(frozen=True, repr=False)
class MintedToken:
    token: str
    jti: str
    issued_at: int
    expires_at: int

    def __repr__(self) -> str:
        return f"MintedToken(jti={self.jti!r}, expires_at={self.expires_at})"


@dataclass(frozen=True, repr=False)
class _LoadedKey:
    kid: str
    alg: str
    private_key: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):
            jwk: dict[str, Any] = OKPAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


class SigningKeys:
    """The current and previous signing keys, decrypted, refreshed from the store."""

    def __init__(
        self,
        store: SqlStore,
        envelope: Envelope,
        alg: str = "ES256",
        refresh_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if alg not in ALGORITHMS:
            raise ValueError(f"signing algorithm must be one of {', '.join(ALGORITHMS)}")
        self._store, self._envelope, self.alg = store, envelope, alg
        self._refresh, self._clock = refresh_seconds, clock
        self._lock = threading.Lock()
        self._keys: list[_LoadedKey] = []
        self._loaded_at = float("-inf")

    def rotate(self) -> str:
        """Generate a new current key; returns its kid."""
        kid = secrets.token_urlsafe(12)
        private: PrivateKey = (
            ed25519.Ed25519PrivateKey.generate()
            if self.alg == "EdDSA"
            else ec.generate_private_key(ec.SECP256R1())
        )
        der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        sealed = self._envelope.encrypt(sealed_record_id("signing_keys", kid), der)
        self._store.add_signing_key(
            SigningKeyRow(kid, self.alg, "current", int(time.time()), sealed)
        )
        self._loaded_at = float("-inf")
        return kid

    def ensure_current(self) -> None:
        """Create the first key of a new broker (or after a change of algorithm)."""
        keys = self._load()
        if not keys or keys[0].alg != self.alg:
            self.rotate()

    def current(self) -> _LoadedKey:
        keys = self._load()
        if not keys:
            raise InvalidAccessToken("no signing key; run `jobtoken broker rotate-signing-key`")
        return keys[0]

    def find(self, kid: str) -> _LoadedKey | None:
        wanted = kid.encode("utf-8", "surrogatepass")  # compare_digest refuses non-ASCII str
        return next((k for k in self._load() if hmac.compare_digest(k.kid.encode(), wanted)), None)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self._load()]}

    def _load(self) -> list[_LoadedKey]:
        with self._lock:
            if self._clock() - self._loaded_at >= self._refresh:
                self._keys = [self._open(row) for row in self._store.signing_keys()]
                self._loaded_at = self._clock()
            return list(self._keys)

    def _open(self, row: SigningKeyRow) -> _LoadedKey:
        der = self._envelope.decrypt(sealed_record_id("signing_keys", row.kid), row.sealed)
        private = serialization.load_der_private_key(der, password=None)
        if not isinstance(private, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise InvalidAccessToken(f"signing key {row.kid} has an unsupported type")
        return _LoadedKey(row.kid, row.alg, private)


class TokenSigner:
    """Signs job-bound tokens and verifies the ones presented back to the broker."""

    def __init__(self, keys: SigningKeys, issuer: str) -> None:
        self._keys, self.issuer = keys, issuer

    def sign(
        self,
        *,
        connector: str,
        scopes: tuple[str, ...],
        ttl: int,
        subject: str,
        binding: JobBinding,
        now: int,
    ) -> MintedToken:
        key = self._keys.current()
        jti = secrets.token_urlsafe(18)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": connector,
            "sub": subject,
            "scope": " ".join(scopes),
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": jti,
            "client_id": binding.client_id,
            **binding.claims(),
        }
        token = jwt.encode(
            claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": TOKEN_TYPE}
        )
        return MintedToken(token=token, jti=jti, issued_at=now, expires_at=now + ttl)

    def verify(self, token: str, *, connector: str) -> dict[str, Any]:
        """The claims of a token this broker minted for ``connector``; raises otherwise."""
        if len(token) > _MAX_TOKEN_BYTES:
            raise InvalidAccessToken("token too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidAccessToken("not a JWT") from None
        if set(header) - {"alg", "kid", "typ"} or header.get("typ") != TOKEN_TYPE:
            raise InvalidAccessToken("unexpected token header")
        kid = header.get("kid")
        key = self._keys.find(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidAccessToken("unknown signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=[key.alg],
                audience=connector,
                issuer=self.issuer,
                leeway=0,
                options={
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_aud": True,
                    "verify_iss": True,
                    "require": _REQUIRED_CLAIMS,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidAccessToken(f"token rejected: {type(exc).__name__}") from None
        if not isinstance(claims.get("scope"), str) or not isinstance(claims.get("jti"), str):
            raise InvalidAccessToken("token claims have the wrong types")
        return claims
