"""Sealed credential files: a connector credential sealed on an admin's laptop to the
broker's public seal key, committed beside the broker's config, opened only by the
broker that holds the private key.

The seal is libsodium's sealed box (``crypto_box_seal``: an ephemeral X25519 key pair,
XSalsa20-Poly1305, the nonce derived from both public keys) through PyNaCl's
``SealedBox``: the primitive GitHub uses for Actions secrets
(https://docs.github.com/en/rest/guides/encrypting-secrets-for-the-rest-api). Anyone
with the public key can seal; only the private key opens, and the box's MAC refuses
any altered or truncated byte.

A file is text, version 1::

    jobtoken-sealed-credential v1 seal-0123456789abcdef
    <the sealed box in base64, in lines of 76 characters>

The header names the key the box is sealed to, so a file sealed to another broker (or
to a key this broker no longer holds) is recognised by its key id before any
decryption, and the error says which key it needs.

This module needs PyNaCl and the standard library only: ``jobtoken seal`` runs from a
plain ``pip install jobtoken``, without the broker's libraries.

Public API: :func:`seal_credential`, :func:`open_credential`, :func:`read_sealed_file`,
:func:`parse_sealed`, :func:`parse_public_key`, :func:`seal_key_id`, :class:`SealedFile`,
:class:`SealedFileError`, :data:`FORMAT`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from jobtoken.broker.errors import BrokerFailure

__all__ = [
    "FORMAT",
    "MAX_CREDENTIAL_BYTES",
    "SealedFile",
    "SealedFileError",
    "open_credential",
    "parse_public_key",
    "parse_sealed",
    "read_sealed_file",
    "seal_credential",
    "seal_key_id",
]

FORMAT = "jobtoken-sealed-credential"
VERSION = "v1"
MAX_CREDENTIAL_BYTES = 64 * 1024
#: a sealed 64 KiB credential in base64 lines, with its header, fits in this
MAX_FILE_BYTES = 96 * 1024
_KEY_BYTES = 32
_SEAL_OVERHEAD = 48  # the ephemeral public key (32) and the MAC (16)
_LINE = 76


class SealedFileError(BrokerFailure):
    """A sealed credential file, or a public key, that cannot be used; the text names the
    file and what to do, never a secret."""


@dataclass(frozen=True)
class SealedFile:
    """A parsed sealed credential file: the key id it names and its sealed box."""

    key_id: str
    box: bytes
    #: SHA-256 of the file's bytes as read (what the audit records)
    sha256: str
    origin: str

    def to_text(self) -> str:
        body = base64.b64encode(self.box).decode("ascii")
        lines = [body[i : i + _LINE] for i in range(0, len(body), _LINE)]
        return "\n".join([f"{FORMAT} {VERSION} {self.key_id}", *lines]) + "\n"


def seal_key_id(public_key: bytes) -> str:
    """A seal key's public name: a truncated hash of its public key."""
    digest = hashlib.sha256(b"jobtoken seal key id\x00" + public_key).hexdigest()
    return "seal-" + digest[:16]


def parse_public_key(text: str) -> bytes:
    """A seal key as ``jobtoken broker seal-key`` prints it: 32 bytes in base64."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != _KEY_BYTES:
        raise SealedFileError(
            "--key must be the broker's seal key as `jobtoken broker seal-key --config FILE` "
            "prints it (32 bytes in base64)"
        )
    return raw


def seal_credential(credential: bytes, public_key: bytes) -> str:
    """The text of a sealed credential file holding ``credential`` for ``public_key``."""
    if not credential:
        raise SealedFileError("the credential is empty")
    if len(credential) > MAX_CREDENTIAL_BYTES:
        raise SealedFileError("the credential is larger than 64 KiB")
    box = SealedBox(PublicKey(public_key)).encrypt(credential)
    return SealedFile(seal_key_id(public_key), bytes(box), "", "").to_text()


def read_sealed_file(path: Path) -> SealedFile:
    """Read and parse the file at ``path`` (at most 96 KiB); nothing is decrypted."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SealedFileError(
            f"cannot read the sealed credential file {path}: {exc.strerror}"
        ) from None
    return parse_sealed(data, str(path))


def parse_sealed(data: bytes, origin: str) -> SealedFile:
    """Parse a sealed credential file's bytes; ``origin`` names it in errors."""
    if len(data) > MAX_FILE_BYTES:
        raise SealedFileError(f"{origin} is larger than 96 KiB: not a sealed credential file")
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    header, _, body = text.partition("\n")
    fields = header.strip().split(" ")
    if len(fields) != 3 or fields[0] != FORMAT:
        raise SealedFileError(
            f"{origin} is not a jobtoken sealed credential file (its first line must be "
            f"'{FORMAT} {VERSION} KEY-ID'); seal the credential with `jobtoken seal`"
        )
    if fields[1] != VERSION:
        raise SealedFileError(
            f"{origin} is format {fields[1]!r}, which this release does not read (it reads "
            f"{VERSION}); seal it again with this release's `jobtoken seal`"
        )
    try:
        box = base64.b64decode("".join(body.split()), validate=True)
    except (ValueError, binascii.Error):
        raise SealedFileError(_corrupt(origin, "its body is not base64")) from None
    if len(box) <= _SEAL_OVERHEAD:
        raise SealedFileError(_corrupt(origin, "its sealed box is too short"))
    return SealedFile(fields[2], box, sha256, origin)


def open_credential(sealed: SealedFile, private_key: bytes) -> bytes:
    """The credential in ``sealed``, opened with ``private_key`` (whose key id the file
    must name); :class:`SealedFileError` for a file sealed to another key, altered or
    truncated."""
    key = PrivateKey(private_key)
    key_id = seal_key_id(bytes(key.public_key))
    if sealed.key_id != key_id:
        raise SealedFileError(
            f"{sealed.origin} is sealed to key {sealed.key_id}, not to this broker's seal "
            f"key {key_id}: seal it again with the key `jobtoken broker seal-key` prints"
        )
    try:
        credential = bytes(SealedBox(key).decrypt(sealed.box))
    except CryptoError:
        raise SealedFileError(
            _corrupt(origin=sealed.origin, why=f"it does not open with seal key {key_id}")
        ) from None
    try:
        credential.decode("utf-8")
    except UnicodeDecodeError:
        raise SealedFileError(f"{sealed.origin} holds a credential that is not UTF-8") from None
    return credential


def _corrupt(origin: str, why: str) -> str:
    return (
        f"{origin} is altered or truncated ({why}); seal the credential again with "
        "`jobtoken seal --key KEY` and the key `jobtoken broker seal-key` prints"
    )
