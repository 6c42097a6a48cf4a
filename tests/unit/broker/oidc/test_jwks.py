"""JWKS discovery and caching against a scripted issuer on loopback."""

from __future__ import annotations

import functools
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from jobtoken.broker.oidc.jwks import JwksCache, JwksError, TrustedIssuer
from support.loopback_guard import loopback_only


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class ScriptedIssuer:
    """Answers each path with a scripted ``Route``; records every request path."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def serve_keys(self, *keys: dict[str, Any], jwks_uri: str | None = None) -> None:
        discovery = {"issuer": self.url, "jwks_uri": jwks_uri or f"{self.url}/.well-known/jwks"}
        self.routes["/.well-known/openid-configuration"] = Route(
            body=json.dumps(discovery).encode()
        )
        self.routes["/.well-known/jwks"] = Route(body=json.dumps({"keys": list(keys)}).encode())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                scripted.requests.append(self.path)
                route = scripted.routes.get(self.path, Route(status=404, body=b"{}"))
                time.sleep(route.delay)
                try:
                    self.send_response(route.status)
                    headers = {"Content-Length": str(len(route.body)), **route.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


#: which of two keys of a size the next `rsa_jwk` takes
_TURNS = itertools.count()


@functools.cache
def _rsa_key(bits: int, which: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def rsa_jwk(kid: str, bits: int = 2048, **extra: Any) -> dict[str, Any]:
    """The public JWK of an RSA key: one of two made once per size (RSA keys are slow to
    make), in turn, so that two made one after the other (a duplicate kid) differ."""
    key = _rsa_key(bits, next(_TURNS) % 2)
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, **extra}


@pytest.fixture
def scripted() -> Iterator[ScriptedIssuer]:
    issuer = ScriptedIssuer()
    yield issuer
    issuer.server.shutdown()
    issuer.server.server_close()


def cache_for(issuer: ScriptedIssuer, **settings: Any) -> JwksCache:
    return JwksCache(TrustedIssuer(issuer.url, allow_http_loopback=True), **settings)


def unavailable(cache: JwksCache, kid: str = "k1", now: float = 1000.0) -> JwksError:
    with pytest.raises(JwksError) as caught:
        cache.key_for(kid, now=now)
    assert caught.value.reason == "jwks_unavailable"
    return caught.value


def test_keys_come_from_the_discovery_documents_jwks_uri(scripted: ScriptedIssuer) -> None:
    jwk = rsa_jwk("k1", alg="RS256", use="sig")
    scripted.serve_keys(jwk)
    cache = cache_for(scripted)
    key = cache.key_for("k1", now=1000.0)
    assert key.public_numbers().e == 65537
    assert scripted.requests == ["/.well-known/openid-configuration", "/.well-known/jwks"]
    assert cache.key_for("k1", now=1001.0) is key
    assert len(scripted.requests) == 2


def test_key_set_older_than_max_age_is_refetched(scripted: ScriptedIssuer) -> None:
    scripted.serve_keys(rsa_jwk("k1"))
    cache = cache_for(scripted, max_age=100.0)
    cache.key_for("k1", now=1000.0)
    cache.key_for("k1", now=1099.0)
    assert len(scripted.requests) == 2
    cache.key_for("k1", now=1101.0)
    assert len(scripted.requests) == 4


def test_stale_key_set_that_cannot_be_refreshed_denies(scripted: ScriptedIssuer) -> None:
    scripted.serve_keys(rsa_jwk("k1"))
    cache = cache_for(scripted, max_age=100.0)
    cache.key_for("k1", now=1000.0)
    scripted.routes["/.well-known/jwks"] = Route(status=503)
    unavailable(cache, now=1200.0)


def test_discovery_naming_another_issuer_is_refused(scripted: ScriptedIssuer) -> None:
    scripted.serve_keys(rsa_jwk("k1"))
    discovery = {"issuer": "https://token.actions.githubusercontent.com", "jwks_uri": "x"}
    scripted.routes["/.well-known/openid-configuration"] = Route(
        body=json.dumps(discovery).encode()
    )
    assert "different issuer" in unavailable(cache_for(scripted)).description


@pytest.mark.parametrize(
    "jwks_uri",
    [
        "http://169.254.169.254/latest/meta-data/jwks",
        "https://attacker.example/jwks",
        "http://127.0.0.2:1/jwks",
        "http://user:pw@127.0.0.1/jwks",
        "file:///etc/passwd",
    ],
)
def test_jwks_uri_outside_the_issuers_origin_is_never_fetched(
    scripted: ScriptedIssuer, jwks_uri: str
) -> None:
    scripted.serve_keys(rsa_jwk("k1"), jwks_uri=jwks_uri)
    with loopback_only() as connections:
        unavailable(cache_for(scripted))
    assert len(connections) == 1, "only the discovery document was fetched"
    assert scripted.requests == ["/.well-known/openid-configuration"]


def test_redirects_are_not_followed(scripted: ScriptedIssuer) -> None:
    scripted.serve_keys(rsa_jwk("k1"))
    scripted.routes["/.well-known/openid-configuration"] = Route(
        status=302, headers={"Location": f"{scripted.url}/.well-known/jwks"}
    )
    error = unavailable(cache_for(scripted))
    assert "HTTP 302" in error.description
    assert scripted.requests == ["/.well-known/openid-configuration"]


@pytest.mark.parametrize("status", [404, 500, 503])
def test_error_status_denies(scripted: ScriptedIssuer, status: int) -> None:
    scripted.serve_keys(rsa_jwk("k1"))
    scripted.routes["/.well-known/jwks"] = Route(status=status, body=b'{"keys": []}')
    assert f"HTTP {status}" in unavailable(cache_for(scripted)).description


def test_oversized_documents_are_refused(scripted: ScriptedIssuer) -> None:
    scripted.serve_keys(rsa_jwk("k1"))
    big = json.dumps({"keys": [rsa_jwk("k1")], "pad": "x" * 70_000}).encode()
    scripted.routes["/.well-known/jwks"] = Route(body=big)
    assert "more than 65536 bytes" in unavailable(cache_for(scripted)).description


def test_oversized_body_without_content_length_is_cut_off(scripted: ScriptedIssuer) -> None:
    scripted.serve_keys(rsa_jwk("k1"))
    big = json.dumps({"keys": [rsa_jwk("k1")], "pad": "x" * 10_000}).encode()
    scripted.routes["/.well-known/jwks"] = Route(body=big, headers={"Content-Length": "10"})
    cache = cache_for(scripted, max_document_bytes=4096)
    unavailable(cache)


def test_slow_issuer_times_out(scripted: ScriptedIssuer) -> None:
    scripted.serve_keys(rsa_jwk("k1"))
    scripted.routes["/.well-known/jwks"].delay = 2.0
    cache = cache_for(scripted, connect_timeout=0.2, read_timeout=0.3)
    started = time.monotonic()
    assert "could not be reached" in unavailable(cache).description
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"keys": "x"}',
        b'{"keys": []}',
        b'{"keys": [1]}',
        b'{"keys": [], "keys": []}',
        json.dumps({"keys": [{"kty": "RSA", "kid": "k1", "n": "AQAB"}] * 2}).encode(),
    ],
)
def test_malformed_jwks_denies(scripted: ScriptedIssuer, body: bytes) -> None:
    scripted.serve_keys(rsa_jwk("k1"))
    scripted.routes["/.well-known/jwks"] = Route(body=body)
    unavailable(cache_for(scripted))


def test_duplicate_kid_in_jwks_denies(scripted: ScriptedIssuer) -> None:
    scripted.serve_keys(rsa_jwk("k1"), rsa_jwk("k1"))
    assert "twice" in unavailable(cache_for(scripted)).description


@pytest.mark.parametrize(
    "jwk",
    [
        rsa_jwk("k1", bits=1024),
        rsa_jwk("k1", use="enc"),
        rsa_jwk("k1", alg="RS512"),
        {
            **json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())),
            "kid": "k1",
        },
        {"kty": "oct", "kid": "k1", "k": "c2VjcmV0"},
    ],
)
def test_keys_unfit_for_rs256_signatures_are_never_used(
    scripted: ScriptedIssuer, jwk: dict[str, Any]
) -> None:
    scripted.serve_keys(rsa_jwk("k2"), jwk)
    cache = cache_for(scripted)
    with pytest.raises(JwksError) as caught:
        cache.key_for("k1", now=1000.0)
    assert caught.value.reason == "unknown_key"
    assert cache.key_for("k2", now=2000.0).key_size == 2048, "the usable key is still served"


def test_unknown_kid_refetches_at_most_once_per_interval(scripted: ScriptedIssuer) -> None:
    scripted.serve_keys(rsa_jwk("k1"))
    cache = cache_for(scripted, refetch_interval=60.0)
    cache.key_for("k1", now=1000.0)
    for now in (1001.0, 1002.0, 1030.0):
        with pytest.raises(JwksError) as caught:
            cache.key_for("k9", now=now)
        assert caught.value.reason == "unknown_key"
    assert len(scripted.requests) == 2, "the first unknown kid came within the interval"
    with pytest.raises(JwksError):
        cache.key_for("k9", now=1061.0)
    assert len(scripted.requests) == 4
    scripted.serve_keys(rsa_jwk("k1"), rsa_jwk("k9"))
    cache.key_for("k9", now=1122.0)
    assert len(scripted.requests) == 6


def test_pinned_document_serves_keys_without_the_network(scripted: ScriptedIssuer) -> None:
    cache = cache_for(scripted)
    cache.load_document(json.dumps({"keys": [rsa_jwk("k1")]}).encode(), now=1000.0)
    with loopback_only() as connections:
        cache.key_for("k1", now=1001.0)
        with pytest.raises(JwksError):
            cache.key_for("k2", now=1002.0)
    assert connections == []
    assert scripted.requests == []


def test_errors_quote_no_document_content(scripted: ScriptedIssuer) -> None:
    scripted.serve_keys(rsa_jwk("k1"))
    scripted.routes["/.well-known/jwks"] = Route(body=b'{"keys": "::error::SECRET-CONTENT"}')
    error = unavailable(cache_for(scripted))
    assert "SECRET-CONTENT" not in error.description
    assert "::" not in error.description


def test_errors_never_quote_the_issuers_jwks_uri(scripted: ScriptedIssuer) -> None:
    scripted.serve_keys(rsa_jwk("k1"), jwks_uri=f"{scripted.url}/keys%0A::error::evil")
    error = unavailable(cache_for(scripted))
    assert "HTTP 404" in error.description
    assert "evil" not in error.description
    assert "::" not in error.description


# -- a refetch is one flight, outside the lock ---------------------------------------------


def test_a_refetch_in_flight_does_not_stall_requests_for_known_keys(
    scripted: ScriptedIssuer,
) -> None:
    scripted.serve_keys(rsa_jwk("k1"))
    cache = cache_for(scripted, refetch_interval=0.0, read_timeout=5.0)
    cache.key_for("k1", now=1000.0)
    scripted.serve_keys(rsa_jwk("k1"), rsa_jwk("k2"))
    scripted.routes["/.well-known/jwks"].delay = 1.5
    fetched: list[object] = []
    refetch = threading.Thread(target=lambda: fetched.append(cache.key_for("k2", now=1001.0)))
    refetch.start()
    time.sleep(0.3)  # the refetch for k2 is now waiting on the slow issuer

    started = time.monotonic()
    cache.key_for("k1", now=1001.0)
    waited = time.monotonic() - started

    refetch.join(timeout=10)
    assert waited < 0.5, f"a known key waited {waited:.2f} s for another request's refetch"
    assert len(fetched) == 1


def test_concurrent_requests_for_an_unknown_key_share_one_fetch(
    scripted: ScriptedIssuer,
) -> None:
    scripted.serve_keys(rsa_jwk("k1"))
    cache = cache_for(scripted, refetch_interval=0.0, read_timeout=5.0)
    cache.key_for("k1", now=1000.0)
    scripted.requests.clear()
    scripted.serve_keys(rsa_jwk("k1"), rsa_jwk("k2"))
    scripted.routes["/.well-known/jwks"].delay = 0.8
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.key_for("k2", now=1001.0)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(results) == 8
    assert scripted.requests.count("/.well-known/jwks") == 1  # one flight for all eight


def test_waiting_for_a_flight_is_bounded_and_a_failed_flight_denies_its_waiters(
    scripted: ScriptedIssuer,
) -> None:
    scripted.serve_keys(rsa_jwk("k1"))
    cache = cache_for(scripted, refetch_interval=0.0, connect_timeout=0.2, read_timeout=0.3)
    cache.key_for("k1", now=1000.0)
    scripted.routes["/.well-known/jwks"] = Route(status=503, delay=0.2)
    errors: list[str] = []

    def ask() -> None:
        try:
            cache.key_for("k9", now=1001.0)
        except JwksError as exc:
            errors.append(exc.reason)

    started = time.monotonic()
    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert errors == ["jwks_unavailable"] * 4
    assert time.monotonic() - started < 2.5
    assert cache.key_for("k1", now=1002.0) is not None  # the cached keys still work
