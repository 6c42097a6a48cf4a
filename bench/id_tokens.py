"""Fresh GitHub-shaped RS256 ID tokens for a load run, signed in parallel.

Each token is what ``FakeOidcIssuer.mint`` makes (same claims, same key, same ``kid``,
a new ``jti``): the worker processes rebuild the issuer from its PEM key, so the broker
and OpenBao verify exactly what the fake issuer would have handed a job. Signing is
about 1 ms per token, so the pool is made on every core before any timed run.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from support.oidc_issuer import FakeOidcIssuer

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105
_CHUNK = 500

_worker_issuer: FakeOidcIssuer | None = None
_worker_audience = ""


@dataclass(frozen=True)
class IssuerSpec:
    """What a worker needs to sign as the fake issuer (the key as PEM: keys don't pickle)."""

    port: int
    kid: str
    claims: dict[str, Any]
    private_pem: bytes
    audience: str

    @classmethod
    def of(cls, issuer: FakeOidcIssuer, audience: str) -> IssuerSpec:
        pem = issuer.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(issuer.port, issuer.kid, dict(issuer.claims), pem, audience)


def _init_worker(spec: IssuerSpec) -> None:
    global _worker_issuer, _worker_audience
    issuer = FakeOidcIssuer(port=spec.port, kid=spec.kid, claims=dict(spec.claims))
    key = serialization.load_pem_private_key(spec.private_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    issuer.private_key = key
    _worker_issuer, _worker_audience = issuer, spec.audience


def _sign(count: int) -> list[str]:
    assert _worker_issuer is not None
    return [_worker_issuer.mint(audience=_worker_audience) for _ in range(count)]


@dataclass
class TokenPool:
    """``count`` tokens signed at ``minted_at`` (their ``exp`` is ``minted_at + lifetime``)."""

    tokens: list[str]
    minted_at: float
    lifetime: int

    def seconds_left(self) -> float:
        return self.minted_at + self.lifetime - time.time()


def mint_pool(issuer: FakeOidcIssuer, audience: str, count: int) -> TokenPool:
    """Sign ``count`` tokens on every available core."""
    started = time.time()
    chunks = [_CHUNK] * (count // _CHUNK) + ([count % _CHUNK] if count % _CHUNK else [])
    processes = max(1, len(os.sched_getaffinity(0)))
    context = multiprocessing.get_context("spawn")
    spec = IssuerSpec.of(issuer, audience)
    with context.Pool(processes, initializer=_init_worker, initargs=(spec,)) as pool:
        tokens = [token for chunk in pool.map(_sign, chunks) for token in chunk]
    return TokenPool(tokens, started, issuer.lifetime)


def exchange_body(id_token: str) -> str:
    """The RFC 8693 form body of one ``POST /token`` (contacts.read from ``contacts``)."""
    return urlencode(
        {
            "grant_type": GRANT,
            "subject_token": id_token,
            "subject_token_type": ID_TOKEN_TYPE,
            "resource": "contacts",
            "scope": "contacts.read",
        }
    )


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    """One request body per line (bodies hold no newline: JWTs and form bodies are ASCII)."""
    if any("\n" in line for line in lines):
        raise ValueError("a request body holds a newline")
    path.write_text("".join(f"{line}\n" for line in lines))
    return path
