from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from jobtoken.broker.secrets.envelope import Envelope, MasterKey
from jobtoken.broker.store import SqlStore, open_store
from jobtoken.broker.tokens.signing import InvalidAccessToken, JobBinding, SigningKeys, TokenSigner

BINDING = JobBinding(repository_id="1", run_id="2", run_attempt="3", check_run_id="4")


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return open_store("sqlite", path=tmp_path / "mint.db")


def _signer(store: SqlStore, alg: str = "ES256") -> tuple[SigningKeys, TokenSigner]:
    keys = SigningKeys(store, Envelope(MasterKey.generate()), alg=alg, refresh_seconds=0)
    keys.ensure_current()
    return keys, TokenSigner(keys, issuer="https://broker.test")


def _mint(signer: TokenSigner, ttl: int = 300, now: int | None = None) -> str:
    return signer.sign(
        connector="contacts",
        scopes=("contacts.read",),
        ttl=ttl,
        subject="repo:o/r:ref:refs/heads/main",
        binding=BINDING,
        now=int(time.time()) if now is None else now,
    ).token


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_a_minted_token_verifies_with_the_published_jwks(store: SqlStore, alg: str) -> None:
    keys, signer = _signer(store, alg)
    token = _mint(signer)
    jwk_set = jwt.PyJWKSet.from_dict(keys.jwks())
    header = jwt.get_unverified_header(token)
    assert header == {"alg": alg, "kid": jwk_set.keys[0].key_id, "typ": "at+jwt"}
    claims = jwt.decode(
        token,
        jwk_set[header["kid"]].key,
        algorithms=[alg],
        audience="contacts",
        issuer="https://broker.test",
    )
    assert claims["scope"] == "contacts.read"
    assert claims["exp"] - claims["iat"] == 300
    assert {k: claims[k] for k in ("repository_id", "run_id", "run_attempt", "check_run_id")} == {
        "repository_id": "1",
        "run_id": "2",
        "run_attempt": "3",
        "check_run_id": "4",
    }
    assert signer.verify(token, connector="contacts")["jti"] == claims["jti"]


def test_a_token_for_another_connector_is_refused(store: SqlStore) -> None:
    _, signer = _signer(store)
    with pytest.raises(InvalidAccessToken, match="InvalidAudienceError"):
        signer.verify(_mint(signer), connector="other")


def test_an_expired_token_is_refused(store: SqlStore) -> None:
    _, signer = _signer(store)
    token = _mint(signer, ttl=60, now=int(time.time()) - 120)
    with pytest.raises(InvalidAccessToken, match="ExpiredSignatureError"):
        signer.verify(token, connector="contacts")


def test_a_token_signed_by_another_broker_is_refused(store: SqlStore, tmp_path: Path) -> None:
    _, signer = _signer(store)
    _, stranger = _signer(open_store("sqlite", path=tmp_path / "other.db"))
    with pytest.raises(InvalidAccessToken, match="unknown signing key"):
        signer.verify(_mint(stranger), connector="contacts")


def test_alg_none_is_refused(store: SqlStore) -> None:
    keys, signer = _signer(store)
    forged = jwt.encode(
        {"aud": "contacts"}, key=None, algorithm="none",
        headers={"kid": keys.current().kid, "typ": "at+jwt"},
    )  # fmt: skip
    with pytest.raises(InvalidAccessToken):
        signer.verify(forged, connector="contacts")


def test_extra_headers_are_refused(store: SqlStore) -> None:
    keys, signer = _signer(store)
    key = keys.current()
    forged = jwt.encode(
        {"aud": "contacts"}, key.private_key, algorithm="ES256",
        headers={"kid": key.kid, "typ": "at+jwt", "jku": "https://evil"},
    )  # fmt: skip
    with pytest.raises(InvalidAccessToken, match="unexpected token header"):
        signer.verify(forged, connector="contacts")


def test_rotation_keeps_the_previous_key_and_retires_the_one_before(store: SqlStore) -> None:
    keys, signer = _signer(store)
    first = _mint(signer)
    keys.rotate()
    second = _mint(signer)
    assert len(keys.jwks()["keys"]) == 2
    signer.verify(first, connector="contacts")
    keys.rotate()
    assert len(keys.jwks()["keys"]) == 2
    signer.verify(second, connector="contacts")
    with pytest.raises(InvalidAccessToken, match="unknown signing key"):
        signer.verify(first, connector="contacts")


def test_the_jwks_holds_no_private_material(store: SqlStore) -> None:
    keys, _ = _signer(store)
    for jwk in keys.jwks()["keys"]:
        assert "d" not in jwk
        assert jwk["use"] == "sig"


def test_signing_keys_are_stored_sealed(store: SqlStore) -> None:
    from cryptography.hazmat.primitives import serialization

    keys, _ = _signer(store)
    der = keys.current().private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert all(der not in row.sealed for row in store.signing_keys())
