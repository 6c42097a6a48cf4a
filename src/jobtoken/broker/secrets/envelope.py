"""Envelope encryption for secrets at rest: connector credentials and signing keys.

Every record is sealed with its own fresh 256-bit data key (AES-256-GCM); the data key
is wrapped (AES-256-GCM again) by a master key that never touches the store. The
record id is bound into both layers as associated data, so a sealed blob copied onto
another record fails to open. The master key has an id, derived from the key itself,
written beside each wrapped data key: a broker can hold the new master key and the
previous ones at the same time, open records sealed under any of them, and
:meth:`Envelope.rewrap` moves a record to the current key without touching its
ciphertext — that is how ``jobtoken broker rotate-master-key`` rotates without downtime.

Public API: :class:`MasterKey`, :class:`Envelope`, :class:`EnvelopeError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jobtoken.broker.errors import BrokerFailure

__all__ = ["Envelope", "EnvelopeError", "MasterKey"]

_FORMAT_VERSION = 1
_NONCE_BYTES = 12
_KEY_BYTES = 32
_MAX_SECRET_BYTES = 64 * 1024
_HOW_TO_GENERATE = (
    "generate one with `python3 -c 'import secrets,base64;"
    "print(base64.b64encode(secrets.token_bytes(32)).decode())'`"
)


class EnvelopeError(BrokerFailure):
    """A master key could not be loaded or a sealed record could not be opened."""


@dataclass(frozen=True, repr=False)
class MasterKey:
    """A 256-bit key-encryption key. ``repr`` never shows the key."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != _KEY_BYTES:
            raise EnvelopeError(f"a master key must be {_KEY_BYTES} bytes; {_HOW_TO_GENERATE}")

    def __repr__(self) -> str:
        return f"MasterKey(id={self.key_id!r})"

    @property
    def key_id(self) -> str:
        """A public name for this key: a truncated hash, useless for recovering the key."""
        digest = hashlib.sha256(b"jobtoken master key id\x00" + self.key).hexdigest()
        return "mk-" + digest[:16]

    @classmethod
    def from_text(cls, text: str, *, origin: str) -> MasterKey:
        """Parse a base64 (standard or url-safe) or hex encoding of 32 bytes."""
        value = text.strip()
        candidates: list[bytes] = []
        for decode in (_b64, _b64url, bytes.fromhex):
            try:
                candidates.append(decode(value))
            except (ValueError, binascii.Error):
                continue
        for raw in candidates:
            if len(raw) == _KEY_BYTES:
                return cls(raw)
        raise EnvelopeError(
            f"the master key from {origin} is not 32 bytes in base64 or hex; {_HOW_TO_GENERATE}"
        )

    @classmethod
    def from_env(cls, name: str) -> MasterKey:
        text = os.environ.get(name)
        if not text:
            raise EnvelopeError(f"environment variable {name} (master key) is not set or empty")
        return cls.from_text(text, origin=f"environment variable {name}")

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(_KEY_BYTES))

    def encoded(self) -> str:
        return base64.b64encode(self.key).decode("ascii")


class Envelope:
    """Seals and opens records. ``current`` seals; ``current`` and ``previous`` open."""

    def __init__(self, current: MasterKey, previous: tuple[MasterKey, ...] = ()) -> None:
        self.current = current
        self._keys = {k.key_id: k for k in (*previous, current)}

    def encrypt(self, record_id: str, plaintext: bytes) -> bytes:
        if len(plaintext) > _MAX_SECRET_BYTES:
            raise EnvelopeError(f"a secret may be at most {_MAX_SECRET_BYTES} bytes")
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, _data_aad(record_id))
        return _Blob(
            key_id=self.current.key_id,
            wrapped_key=self._wrap(record_id, self.current, data_key),
            nonce=nonce,
            ciphertext=ciphertext,
        ).to_bytes()

    def decrypt(self, record_id: str, blob: bytes) -> bytes:
        sealed = _Blob.from_bytes(blob)
        data_key = self._unwrap(record_id, sealed)
        try:
            return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, _data_aad(record_id))
        except InvalidTag:
            raise EnvelopeError(f"record {record_id!r} failed authentication (altered?)") from None

    def key_id_of(self, blob: bytes) -> str:
        return _Blob.from_bytes(blob).key_id

    def rewrap(self, record_id: str, blob: bytes) -> bytes:
        """Re-wrap the record's data key under the current master key; same ciphertext."""
        sealed = _Blob.from_bytes(blob)
        if sealed.key_id == self.current.key_id:
            return blob
        data_key = self._unwrap(record_id, sealed)
        return _Blob(
            key_id=self.current.key_id,
            wrapped_key=self._wrap(record_id, self.current, data_key),
            nonce=sealed.nonce,
            ciphertext=sealed.ciphertext,
        ).to_bytes()

    def _wrap(self, record_id: str, master: MasterKey, data_key: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        aad = _wrap_aad(record_id, master.key_id)
        return nonce + AESGCM(master.key).encrypt(nonce, data_key, aad)

    def _unwrap(self, record_id: str, sealed: _Blob) -> bytes:
        master = self._keys.get(sealed.key_id)
        if master is None:
            raise EnvelopeError(
                f"record {record_id!r} is sealed under master key {sealed.key_id}, which this "
                "broker does not hold; add it to previous_master_key_files until "
                "`jobtoken broker rotate-master-key` has run"
            )
        nonce, body = sealed.wrapped_key[:_NONCE_BYTES], sealed.wrapped_key[_NONCE_BYTES:]
        try:
            return AESGCM(master.key).decrypt(nonce, body, _wrap_aad(record_id, master.key_id))
        except InvalidTag:
            raise EnvelopeError(f"record {record_id!r} failed authentication (altered?)") from None


def _data_aad(record_id: str) -> bytes:
    return b"jobtoken/v1/data\x00" + record_id.encode("utf-8")


def _wrap_aad(record_id: str, key_id: str) -> bytes:
    return b"jobtoken/v1/wrap\x00" + record_id.encode("utf-8") + b"\x00" + key_id.encode()


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@dataclass(frozen=True)
class _Blob:
    """Wire layout: version(1) | len(key_id)(1) | key_id | len(wrapped)(2) | wrapped |
    nonce(12) | ciphertext."""

    key_id: str
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes

    def to_bytes(self) -> bytes:
        kid = self.key_id.encode("ascii")
        return (
            struct.pack(">BB", _FORMAT_VERSION, len(kid))
            + kid
            + struct.pack(">H", len(self.wrapped_key))
            + self.wrapped_key
            + self.nonce
            + self.ciphertext
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> _Blob:
        try:
            version, kid_len = struct.unpack_from(">BB", blob, 0)
            if version != _FORMAT_VERSION:
                raise EnvelopeError(f"unknown sealed record version {version}")
            offset = 2
            key_id = blob[offset : offset + kid_len].decode("ascii")
            offset += kid_len
            (wrapped_len,) = struct.unpack_from(">H", blob, offset)
            offset += 2
            wrapped = blob[offset : offset + wrapped_len]
            offset += wrapped_len
            nonce = blob[offset : offset + _NONCE_BYTES]
            ciphertext = blob[offset + _NONCE_BYTES :]
        except (struct.error, UnicodeDecodeError):
            raise EnvelopeError("sealed record is truncated or corrupt") from None
        if len(wrapped) != wrapped_len or len(nonce) != _NONCE_BYTES or len(ciphertext) < 16:
            raise EnvelopeError("sealed record is truncated or corrupt")
        return cls(key_id=key_id, wrapped_key=wrapped, nonce=nonce, ciphertext=ciphertext)
