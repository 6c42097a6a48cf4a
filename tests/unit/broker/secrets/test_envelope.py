from __future__ import annotations

import base64

import pytest

from jobtoken.broker.secrets.envelope import Envelope, EnvelopeError, MasterKey


def test_a_sealed_record_opens_to_its_plaintext() -> None:
    envelope = Envelope(MasterKey.generate())
    assert envelope.decrypt("connector:a", envelope.encrypt("connector:a", b"s3cret")) == b"s3cret"


def test_each_record_gets_a_fresh_data_key_and_nonce() -> None:
    envelope = Envelope(MasterKey.generate())
    first, second = envelope.encrypt("r", b"same"), envelope.encrypt("r", b"same")
    assert first != second
    assert b"same" not in first


def test_the_record_id_is_bound_as_associated_data() -> None:
    envelope = Envelope(MasterKey.generate())
    sealed = envelope.encrypt("connector:a", b"s3cret")
    with pytest.raises(EnvelopeError, match="failed authentication"):
        envelope.decrypt("connector:b", sealed)


def test_one_altered_byte_fails_to_open() -> None:
    envelope = Envelope(MasterKey.generate())
    sealed = bytearray(envelope.encrypt("r", b"s3cret"))
    sealed[-1] ^= 1
    with pytest.raises(EnvelopeError, match="failed authentication"):
        envelope.decrypt("r", bytes(sealed))


def test_a_truncated_record_is_refused() -> None:
    envelope = Envelope(MasterKey.generate())
    with pytest.raises(EnvelopeError, match="truncated or corrupt"):
        envelope.decrypt("r", envelope.encrypt("r", b"x")[:20])


def test_rewrap_moves_the_record_to_the_current_key_keeping_the_ciphertext() -> None:
    old, new = MasterKey.generate(), MasterKey.generate()
    sealed = Envelope(old).encrypt("r", b"s3cret")
    rotating = Envelope(new, previous=(old,))
    assert rotating.decrypt("r", sealed) == b"s3cret"
    rewrapped = rotating.rewrap("r", sealed)
    assert rotating.key_id_of(rewrapped) == new.key_id
    assert rewrapped.endswith(sealed[-(len(b"s3cret") + 16) :])  # same data ciphertext
    assert Envelope(new).decrypt("r", rewrapped) == b"s3cret"
    assert rotating.rewrap("r", rewrapped) is rewrapped


def test_a_record_under_an_unknown_master_key_says_what_to_do() -> None:
    sealed = Envelope(MasterKey.generate()).encrypt("r", b"x")
    with pytest.raises(EnvelopeError, match="previous_master_key_files"):
        Envelope(MasterKey.generate()).decrypt("r", sealed)


def test_master_keys_parse_from_base64_urlsafe_base64_and_hex() -> None:
    raw = bytes(range(32))
    for text in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(), raw.hex()):
        assert MasterKey.from_text(text + "\n", origin="test").key == raw


def test_a_short_master_key_is_refused_without_echoing_it() -> None:
    text = base64.b64encode(b"k" * 31).decode()
    with pytest.raises(EnvelopeError, match="not 32 bytes") as info:
        MasterKey.from_text(text, origin="test")
    assert text not in str(info.value)


def test_the_repr_of_a_master_key_shows_only_its_id() -> None:
    key = MasterKey(bytes(range(32)))
    assert repr(key) == f"MasterKey(id={key.key_id!r})"
    assert key.encoded() not in repr(key)


def test_a_missing_environment_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBTOKEN_TEST_MASTER_KEY", raising=False)
    with pytest.raises(EnvelopeError, match="JOBTOKEN_TEST_MASTER_KEY"):
        MasterKey.from_env("JOBTOKEN_TEST_MASTER_KEY")


def test_oversized_secrets_are_refused() -> None:
    with pytest.raises(EnvelopeError, match="at most"):
        Envelope(MasterKey.generate()).encrypt("r", b"x" * (64 * 1024 + 1))
