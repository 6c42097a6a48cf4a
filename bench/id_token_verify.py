"""The ID-token path on one core: PyJWT's ``decode`` (the options the broker used to
pass) against the broker's own verification (``IdTokenVerifier.verify``: strict
parsing, every check of ``verify.py``, the signature through ``cryptography``), on
the same GitHub-shaped RS256 tokens, in one process, one after the other.

    PYTHONPATH=tests .venv/bin/python bench/id_token_verify.py [--tokens 3000]

PyJWT's figure covers less than the broker's: no strict JSON, no header allowlist,
no claim-value checks. The broker's figure is what ``POST /token`` pays.
"""

from __future__ import annotations

import argparse
import datetime
import time

import jwt
from smoke import smoke_args

from jobtoken.broker.oidc.claims import REQUIRED_CLAIMS
from jobtoken.broker.oidc.verifier import (
    IdTokenVerifier,
    InMemoryJtiStore,
    TrustedIssuer,
    VerifierConfig,
)
from support.oidc_issuer import FakeOidcIssuer

AUDIENCE = "https://jobtoken-bench.example"


def _per_call_us(calls: list[str], verify: object) -> float:
    assert callable(verify)
    started = time.process_time()
    for token in calls:
        verify(token)
    return (time.process_time() - started) / len(calls) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=3000)
    args = smoke_args(parser, tokens=20)
    with FakeOidcIssuer() as issuer:
        tokens = [issuer.mint(audience=AUDIENCE) for _ in range(args.tokens)]
        config = VerifierConfig(
            issuers=(TrustedIssuer(issuer.url, allow_http_loopback=True),), audience=AUDIENCE
        )
        ours = IdTokenVerifier(config, InMemoryJtiStore())
        ours.verify(tokens[0], claim_jti=False)  # fetch the JWKS once
        key = issuer.private_key.public_key()

        def pyjwt(token: str) -> object:
            return jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                audience=AUDIENCE,
                issuer=issuer.url,
                options={
                    "verify_signature": True,
                    "require": list(REQUIRED_CLAIMS),
                    "verify_aud": True,
                    "strict_aud": True,
                    "verify_iss": True,
                    "verify_sub": True,
                    "verify_jti": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "enforce_minimum_key_length": True,
                },
            )

        def broker(token: str) -> object:
            return ours.verify(token, claim_jti=False)

        rounds = [(_per_call_us(tokens, pyjwt), _per_call_us(tokens, broker)) for _ in range(3)]
    best_pyjwt, best_broker = min(r[0] for r in rounds), min(r[1] for r in rounds)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{now}, {args.tokens:,} tokens, best of 3 rounds, CPU time per call:")
    print(f"  PyJWT decode (signature + registered claims only)   {best_pyjwt:7.1f} µs")
    print(f"  IdTokenVerifier.verify (every check, cryptography)  {best_broker:7.1f} µs")


if __name__ == "__main__":
    main()
