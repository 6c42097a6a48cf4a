"""Sealed credential files: a round trip, and every way a file is refused."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from nacl.public import PrivateKey, PublicKey, SealedBox

from jobtoken.broker.secrets.sealed_file import (
    FORMAT,
    SealedFile,
    SealedFileError,
    open_credential,
    parse_public_key,
    parse_sealed,
    read_sealed_file,
    seal_credential,
    seal_key_id,
)

SECRET = b"sk_live_0123456789abcdef"


@pytest.fixture
def key() -> PrivateKey:
    return PrivateKey.generate()


def _sealed(key: PrivateKey, credential: bytes = SECRET) -> bytes:
    return seal_credential(credential, bytes(key.public_key)).encode("ascii")


def test_a_sealed_file_opens_with_the_private_key_and_holds_no_plaintext(key: PrivateKey) -> None:
    data = _sealed(key)
    assert SECRET not in data
    sealed = parse_sealed(data, "api.sealed")
    assert open_credential(sealed, bytes(key)) == SECRET


def test_the_header_names_the_format_version_and_key_id(key: PrivateKey) -> None:
    header = _sealed(key).decode().splitlines()[0]
    assert header == f"{FORMAT} v1 {seal_key_id(bytes(key.public_key))}"
    assert all(len(line) <= 76 for line in _sealed(key, b"x" * 5000).decode().splitlines())


def test_the_box_is_a_libsodium_sealed_box_any_implementation_opens(key: PrivateKey) -> None:
    """The body is crypto_box_seal's output, as GitHub's Actions secrets are."""
    sealed = parse_sealed(_sealed(key), "f")
    assert SealedBox(key).decrypt(sealed.box) == SECRET
    foreign = SealedBox(PublicKey(bytes(key.public_key))).encrypt(b"from elsewhere")
    made = SealedFile(seal_key_id(bytes(key.public_key)), bytes(foreign), "", "f").to_text()
    assert open_credential(parse_sealed(made.encode(), "f"), bytes(key)) == b"from elsewhere"


def test_two_seals_of_one_credential_differ(key: PrivateKey) -> None:
    assert _sealed(key) != _sealed(key)  # a fresh ephemeral key each time


def test_a_file_sealed_to_another_key_is_refused_by_key_id_before_decrypting(
    key: PrivateKey,
) -> None:
    other = PrivateKey.generate()
    sealed = parse_sealed(_sealed(other), "config/api.sealed")
    with pytest.raises(SealedFileError) as refused:
        open_credential(sealed, bytes(key))
    text = str(refused.value)
    assert "config/api.sealed" in text
    assert seal_key_id(bytes(other.public_key)) in text
    assert seal_key_id(bytes(key.public_key)) in text
    assert "jobtoken broker seal-key" in text


def test_a_header_edited_to_name_this_key_does_not_open(key: PrivateKey) -> None:
    other = PrivateKey.generate()
    lines = _sealed(other).decode().splitlines()
    lines[0] = f"{FORMAT} v1 {seal_key_id(bytes(key.public_key))}"
    sealed = parse_sealed("\n".join(lines).encode(), "api.sealed")
    with pytest.raises(SealedFileError, match=r"api\.sealed is altered or truncated"):
        open_credential(sealed, bytes(key))


def test_an_altered_byte_is_refused(key: PrivateKey) -> None:
    sealed = parse_sealed(_sealed(key), "api.sealed")
    box = bytearray(sealed.box)
    box[-1] ^= 1
    altered = SealedFile(sealed.key_id, bytes(box), "", "api.sealed").to_text().encode()
    with pytest.raises(SealedFileError, match=r"altered or truncated.*jobtoken seal"):
        open_credential(parse_sealed(altered, "api.sealed"), bytes(key))


@pytest.mark.parametrize("keep", [1, 20, 40])
def test_a_truncated_file_is_refused(key: PrivateKey, keep: int) -> None:
    data = _sealed(key, b"x" * 200)
    header, _, body = data.partition(b"\n")
    cut = header + b"\n" + body.replace(b"\n", b"")[: keep * 4]  # whole base64 quanta
    with pytest.raises(SealedFileError, match="altered or truncated"):
        open_credential(parse_sealed(cut, "api.sealed"), bytes(key))


def test_a_body_that_is_not_base64_is_refused(key: PrivateKey) -> None:
    data = _sealed(key)[:-3] + b"*!\n"
    with pytest.raises(SealedFileError, match="not base64"):
        parse_sealed(data, "api.sealed")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"sk_live_plaintext\n", "not a jobtoken sealed credential file"),
        (b"", "not a jobtoken sealed credential file"),
        (b"\xff\xfe", "not a jobtoken sealed credential file"),
        (f"{FORMAT} v2 seal-00\nAAAA\n".encode(), "format 'v2'"),
        (b"x" * (97 * 1024), "larger than 96 KiB"),
    ],
)
def test_what_is_not_a_sealed_file_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(SealedFileError, match=match):
        parse_sealed(data, "api.sealed")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SealedFileError, match=r"cannot read the sealed credential file .*nope"):
        read_sealed_file(tmp_path / "nope")


def test_reading_records_the_files_sha256(tmp_path: Path, key: PrivateKey) -> None:
    import hashlib

    path = tmp_path / "api.sealed"
    path.write_bytes(_sealed(key))
    assert read_sealed_file(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_credential_that_is_not_utf8_is_refused(key: PrivateKey) -> None:
    with pytest.raises(SealedFileError, match="not UTF-8"):
        open_credential(parse_sealed(_sealed(key, b"\xff\x00"), "f"), bytes(key))


@pytest.mark.parametrize(("credential", "match"), [(b"", "empty"), (b"x" * 65537, "64 KiB")])
def test_sealing_refuses_an_empty_or_huge_credential(
    key: PrivateKey, credential: bytes, match: str
) -> None:
    with pytest.raises(SealedFileError, match=match):
        seal_credential(credential, bytes(key.public_key))


@pytest.mark.parametrize("text", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_a_public_key_must_be_32_bytes_of_base64(text: str) -> None:
    with pytest.raises(SealedFileError, match="jobtoken broker seal-key"):
        parse_public_key(text)


def test_a_public_key_parses_with_surrounding_whitespace(key: PrivateKey) -> None:
    encoded = base64.b64encode(bytes(key.public_key)).decode()
    assert parse_public_key(f"  {encoded}\n") == bytes(key.public_key)
