from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from jobtoken.broker.secrets.envelope import MasterKey, Sealer
from jobtoken.broker.store import SqlStore, open_store
from jobtoken.broker.tokens.signing import InvalidAccessToken, JobBinding, Minter, SigningKeys

BINDING = JobBinding(repository_id="1", run_id="2", run_attempt="3", check_run_id="4")


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return open_store("sqlite", path=tmp_path / "mint.db")


def _minter(store: SqlStore, alg: str = "ES256") -> tuple[SigningKeys, Minter]:
    keys = SigningKeys(store, Sealer(MasterKey.generate()), alg=alg, refresh_seconds=0)
    keys.ensure_current()
    return keys, Minter(keys, issuer="https://broker.test")


def _mint(minter: Minter, ttl: int = 300, now: int | None = None) -> str:
    return minter.mint(
        connector="contacts",
        scopes=("contacts.read",),
        ttl=ttl,
        subject="repo:o/r:ref:refs/heads/main",
        binding=BINDING,
        now=int(time.time()) if now is None else now,
    ).token


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_a_minted_token_verifies_with_the_published_jwks(store: SqlStore, alg: str) -> None:
    keys, minter = _minter(store, alg)
    token = _mint(minter)
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
    assert minter.verify(token, connector="contacts")["jti"] == claims["jti"]


def test_a_token_for_another_connector_is_refused(store: SqlStore) -> None:
    _, minter = _minter(store)
    with pytest.raises(InvalidAccessToken, match="InvalidAudienceError"):
        minter.verify(_mint(minter), connector="other")


def test_an_expired_token_is_refused(store: SqlStore) -> None:
    _, minter = _minter(store)
    token = _mint(minter, ttl=60, now=int(time.time()) - 120)
    with pytest.raises(InvalidAccessToken, match="ExpiredSignatureError"):
        minter.verify(token, connector="contacts")


def test_a_token_signed_by_another_broker_is_refused(store: SqlStore, tmp_path: Path) -> None:
    _, minter = _minter(store)
    _, stranger = _minter(open_store("sqlite", path=tmp_path / "other.db"))
    with pytest.raises(InvalidAccessToken, match="unknown signing key"):
        minter.verify(_mint(stranger), connector="contacts")


def test_alg_none_is_refused(store: SqlStore) -> None:
    keys, minter = _minter(store)
    forged = jwt.encode(
        {"aud": "contacts"}, key=None, algorithm="none",
        headers={"kid": keys.current().kid, "typ": "at+jwt"},
    )  # fmt: skip
    with pytest.raises(InvalidAccessToken):
        minter.verify(forged, connector="contacts")


def test_extra_headers_are_refused(store: SqlStore) -> None:
    keys, minter = _minter(store)
    key = keys.current()
    forged = jwt.encode(
        {"aud": "contacts"}, key.private_key, algorithm="ES256",
        headers={"kid": key.kid, "typ": "at+jwt", "jku": "https://evil"},
    )  # fmt: skip
    with pytest.raises(InvalidAccessToken, match="unexpected token header"):
        minter.verify(forged, connector="contacts")


def test_rotation_keeps_the_previous_key_and_retires_the_one_before(store: SqlStore) -> None:
    keys, minter = _minter(store)
    first = _mint(minter)
    keys.rotate()
    second = _mint(minter)
    assert len(keys.jwks()["keys"]) == 2
    minter.verify(first, connector="contacts")
    keys.rotate()
    assert len(keys.jwks()["keys"]) == 2
    minter.verify(second, connector="contacts")
    with pytest.raises(InvalidAccessToken, match="unknown signing key"):
        minter.verify(first, connector="contacts")


def test_the_jwks_holds_no_private_material(store: SqlStore) -> None:
    keys, _ = _minter(store)
    for jwk in keys.jwks()["keys"]:
        assert "d" not in jwk
        assert jwk["use"] == "sig"


def test_signing_keys_are_stored_sealed(store: SqlStore) -> None:
    from cryptography.hazmat.primitives import serialization

    keys, _ = _minter(store)
    der = keys.current().private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert all(der not in row.sealed for row in store.signing_keys())
