"""An OIDC issuer's signing keys, fetched through discovery and cached by ``kid``.

Public API (used by ``jobtoken.broker.oidc.verifier``; rarely needed directly):

- ``TrustedIssuer(url, allow_http_loopback=False)`` — one allowlisted issuer.
  ``url`` is compared with a token's ``iss`` as an exact string. It must be
  ``https://…``; plain ``http://`` is accepted only when
  ``allow_http_loopback=True`` *and* the host is 127.0.0.1, ::1 or localhost
  (test issuers on this machine).
- ``JwksCache(issuer, *, refetch_interval, max_age, connect_timeout,
  read_timeout, max_document_bytes)`` — ``key_for(kid, now=...)`` returns the
  RSA public key with that ``kid`` or raises ``JwksError``. Keys come from
  ``<issuer>/.well-known/openid-configuration`` → ``jwks_uri``, fetched with
  ``requests``: no redirects, no proxy or netrc from the environment, a
  connect and a read timeout, an overall deadline, and a size cap on each
  document. The discovery document's ``issuer`` must equal ``url`` and its
  ``jwks_uri`` must have the issuer's scheme, host and port. An unknown
  ``kid`` triggers at most one refetch per ``refetch_interval``; a key set older
  than ``max_age`` is refetched before use, and if that fails the request is
  denied. ``load_document(jwks_bytes, now=...)`` installs a key set without
  the network (pinned keys, tests). Thread safe; a refetch is a single flight
  made outside the lock, so requests for known keys never wait on the network.
  Blocking (call it from a worker thread, not from an event loop).
- ``JwksError(reason, description)`` — ``reason`` is ``"jwks_unavailable"``
  or ``"unknown_key"``; ``description`` says what to fix and quotes no
  document content.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey, RSAPublicNumbers

from jobtoken.broker.oidc.errors import InvalidIdToken
from jobtoken.broker.upstream.bounded_http import BoundedHttpError, request_bounded
from jobtoken.wire.strict_json import StrictJsonError, loads_strict

__all__ = ["JwksCache", "JwksError", "TrustedIssuer"]

#: Most keys accepted in one JWKS (GitHub publishes 2 to 4).
MAX_KEYS = 32
#: Smallest RSA modulus accepted, in bits.
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
MAX_KID_LENGTH = 128
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class JwksError(InvalidIdToken):
    """The issuer's keys could not be obtained, or hold no key with this ``kid``: the ID
    token cannot be verified, so it is refused as any other (``invalid_grant``)."""


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer on the broker's allowlist (see the module docstring)."""

    url: str
    allow_http_loopback: bool = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"issuer {self.url!r}: no query, fragment or credentials allowed")
        if self.url.endswith("/") or not parts.hostname:
            raise ValueError(f"issuer {self.url!r}: write it exactly as tokens carry it")
        if parts.scheme == "https":
            return
        if parts.scheme == "http" and self.allow_http_loopback and _is_loopback(parts.hostname):
            return
        raise ValueError(
            f"issuer {self.url!r} must use https (plain http only for a loopback test issuer "
            "configured with allow_http_loopback)"
        )


class _Flight:
    """One refetch of a key set, which any number of requests wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: JwksError | None = None


class JwksCache:
    """Signing keys of one issuer (see the module docstring)."""

    def __init__(
        self,
        issuer: TrustedIssuer,
        *,
        refetch_interval: float = 60.0,
        max_age: float = 3600.0,
        connect_timeout: float = 3.0,
        read_timeout: float = 5.0,
        max_document_bytes: int = 64 * 1024,
        trust_env: bool = False,
    ) -> None:
        self.issuer = issuer
        self.refetch_interval = refetch_interval
        self.max_age = max_age
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_document_bytes = max_document_bytes
        self._session = requests.Session()
        self._session.trust_env = trust_env
        self._lock = threading.Lock()
        self._keys: dict[str, RSAPublicKey] = {}
        self._loaded_at: float | None = None
        self._last_attempt: float | None = None
        self._in_flight: _Flight | None = None

    def key_for(self, kid: str, *, now: float | None = None) -> RSAPublicKey:
        """The key with `kid`; a refetch runs in a single flight, outside the lock.

        1. A fresh key set that holds `kid` answers at once: a refetch that another
           request started never stalls it.
        2. An unknown `kid`, or a key set older than ``max_age``, needs a refetch —
           at most one per ``refetch_interval`` for an unknown `kid`. The first
           request to need one fetches; every other request that needs one waits
           for that same fetch (bounded by the fetch's own deadline), then reads
           the result.
        3. Whatever the fetch gave: the key, ``unknown_key``, or the fetch's error.
        """
        now = time.time() if now is None else now
        with self._lock:
            fresh = self._loaded_at is not None and now - self._loaded_at < self.max_age
            if fresh and kid in self._keys:
                return self._keys[kid]
            may_fetch = (
                not fresh
                or self._last_attempt is None
                or now - self._last_attempt >= self.refetch_interval
            )
            if not may_fetch and self._in_flight is None:
                raise JwksError(
                    "unknown_key",
                    f"the token's key id is not in {self.issuer.url}'s key set "
                    "(the key set was refreshed recently; a token must be signed by a current key)",
                )
            flight, leader = self._in_flight, False
            if flight is None:
                flight, leader = _Flight(), True
                self._in_flight, self._last_attempt = flight, now
        if leader:
            self._fly(flight, now)
        elif not flight.done.wait(self.connect_timeout + self.read_timeout + 1.0):
            raise _unavailable(f"the key set of {self.issuer.url} took too long to arrive")
        if flight.error is not None:
            raise flight.error
        with self._lock:
            if kid not in self._keys:
                raise JwksError(
                    "unknown_key",
                    f"the token's key id is not in {self.issuer.url}'s current key set",
                )
            return self._keys[kid]

    def load_document(self, document: bytes, *, now: float | None = None) -> None:
        """Install a JWKS document (bytes of ``{"keys": [...]}``) as the current key set."""
        now = time.time() if now is None else now
        with self._lock:
            self._install(document, now)
            self._last_attempt = now  # an unknown kid refetches only after the interval

    # -- internals -----------------------------------------------------------

    def _fly(self, flight: _Flight, now: float) -> None:
        """Fetch and install the key set (the network outside the lock), then land."""
        keys: dict[str, RSAPublicKey] | None = None
        try:
            keys = _parse_jwks(self._fetch_jwks(), self.issuer.url)
        except JwksError as exc:
            flight.error = exc
        except Exception:  # never leave the waiters (and later requests) stuck on a flight
            flight.error = _unavailable(f"the key set of {self.issuer.url} could not be read")
        finally:
            with self._lock:
                if keys is not None and flight.error is None:
                    self._keys, self._loaded_at = keys, now
                self._in_flight = None
            flight.done.set()

    def _install(self, document: bytes, now: float) -> None:
        self._keys = _parse_jwks(document, self.issuer.url)
        self._loaded_at = now

    def _fetch_jwks(self) -> bytes:
        discovery_url = self.issuer.url + "/.well-known/openid-configuration"
        discovery = _json_object(self._get(discovery_url, discovery_url), discovery_url)
        if discovery.get("issuer") != self.issuer.url:
            raise _unavailable(f"{discovery_url} names a different issuer")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not _same_origin(jwks_uri, self.issuer.url):
            raise _unavailable(
                f"{discovery_url} has no jwks_uri on the issuer's own scheme, host and port"
            )
        # The jwks_uri is the issuer's text: fetched, but never quoted in an error.
        return self._get(jwks_uri, f"the jwks_uri of {self.issuer.url}")

    def _get(self, url: str, what: str) -> bytes:
        try:
            response = request_bounded(
                self._session,
                "GET",
                url,
                headers={"Accept": "application/json"},
                max_bytes=self.max_document_bytes,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                total_seconds=self.connect_timeout + self.read_timeout,
            )
        except BoundedHttpError as exc:
            raise _unavailable(f"{what} {exc.detail}") from None
        if response.status != 200:
            raise _unavailable(f"{what} answered HTTP {response.status}, not 200")
        return response.body


def _parse_jwks(document: bytes, source: str) -> dict[str, RSAPublicKey]:
    jwks = _json_object(document, f"the JWKS of {source}")
    entries = jwks.get("keys")
    if not isinstance(entries, list) or not 0 < len(entries) <= MAX_KEYS:
        raise _unavailable(f"the JWKS of {source} must hold 1 to {MAX_KEYS} keys")
    keys: dict[str, RSAPublicKey] = {}
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            raise _unavailable(f"the JWKS of {source} holds a key that is not an object")
        kid = entry.get("kid")
        usable = (
            entry.get("kty") == "RSA"
            and entry.get("use", "sig") == "sig"
            and entry.get("alg", "RS256") == "RS256"
            and isinstance(kid, str)
            and 0 < len(kid) <= MAX_KID_LENGTH
        )
        if not isinstance(kid, str):
            continue
        if kid in seen:
            raise _unavailable(f"the JWKS of {source} lists a key id twice")
        seen.add(kid)
        key = _rsa_key(entry) if usable else None
        if key is not None:
            keys[kid] = key  # other keys (not RS256, too small, broken) are never used
    return keys


def _rsa_key(entry: dict[str, object]) -> RSAPublicKey | None:
    """The RSA public key of a JWK, or None when it is unfit to verify a token."""
    n, e = entry.get("n"), entry.get("e")
    if not isinstance(n, str) or not isinstance(e, str):
        return None
    modulus, exponent = _b64_uint(n), _b64_uint(e)
    if modulus is None or exponent is None:
        return None
    if not MIN_RSA_BITS <= modulus.bit_length() <= MAX_RSA_BITS:
        return None
    if exponent < 3 or exponent % 2 == 0:
        return None
    return RSAPublicNumbers(exponent, modulus).public_key()


def _b64_uint(value: str) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(raw, "big")


def _json_object(document: bytes, what: str) -> dict[str, object]:
    try:
        parsed = loads_strict(document)
    except StrictJsonError as exc:
        raise _unavailable(f"{what} is not strict JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise _unavailable(f"{what} is not a JSON object")
    return parsed


def _same_origin(url: str, issuer: str) -> bool:
    a, b = urlsplit(url), urlsplit(issuer)
    try:
        return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port) and not (
            a.username or a.password
        )
    except ValueError:
        return False


def _is_loopback(host: str) -> bool:
    return host in _LOOPBACK_HOSTS


def _unavailable(description: str) -> JwksError:
    return JwksError(
        "jwks_unavailable", f"the issuer's signing keys are unavailable: {description}"
    )
