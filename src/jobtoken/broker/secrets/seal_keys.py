"""The broker's seal key: the X25519 key pair that sealed credential files are sealed to
(``secrets/sealed_file.py``).

``jobtoken broker seal-key`` creates it on first use and prints its public half. The
private half lives in the store's ``seal_keys`` table, sealed under the master key like
every other secret (record id ``seal-key:<key id>``), so ``jobtoken broker
rotate-master-key`` re-wraps it with the rest, and every broker sharing the store (and
master key) opens the same files. Two processes creating it at once store one key.

Public API: :class:`SealKeys`.
"""

from __future__ import annotations

import threading
import time

from nacl.public import PrivateKey

from jobtoken.broker.secrets.envelope import Envelope, EnvelopeError
from jobtoken.broker.secrets.sealed_file import (
    SealedFile,
    SealedFileError,
    open_credential,
    seal_key_id,
)
from jobtoken.broker.store import SealKeyRow, SqlStore, sealed_record_id

__all__ = ["SealKeys"]


class SealKeys:
    """The seal keys in ``store``, opened with ``envelope`` when a file needs one."""

    def __init__(self, store: SqlStore, envelope: Envelope) -> None:
        self._store, self._envelope = store, envelope
        self._opened: dict[str, bytes] = {}
        self._guard = threading.Lock()

    def ensure_current(self) -> tuple[str, bytes]:
        """The current key's id and public key, the pair created if there is none."""
        current = self.current()
        if current is not None:
            return current
        private = PrivateKey.generate()
        key_id = seal_key_id(bytes(private.public_key))
        sealed = self._envelope.encrypt(sealed_record_id("seal_keys", key_id), bytes(private))
        self._store.add_seal_key(SealKeyRow(key_id, "current", int(time.time()), sealed))
        current = self.current()  # another process may have won: its key is the one
        assert current is not None
        return current

    def current(self) -> tuple[str, bytes] | None:
        """The current key's id and public key; None before ``seal-key`` ran."""
        rows = self._store.seal_keys()
        if not rows:
            return None
        private = PrivateKey(self._private(rows[0].key_id, rows[0].sealed))
        return rows[0].key_id, bytes(private.public_key)

    def open(self, sealed: SealedFile) -> bytes:
        """The credential in ``sealed``; :class:`SealedFileError` names what to do."""
        with self._guard:
            private = self._opened.get(sealed.key_id)
        if private is None:
            rows = {row.key_id: row for row in self._store.seal_keys()}
            row = rows.get(sealed.key_id)
            if row is None:
                held = ", ".join(rows) or "none yet"
                raise SealedFileError(
                    f"{sealed.origin} is sealed to key {sealed.key_id}, which this broker "
                    f"does not hold (its seal key: {held}); it was sealed for another "
                    "broker: seal it again with the key `jobtoken broker seal-key "
                    "--config FILE` prints"
                )
            private = self._private(row.key_id, row.sealed)
        return open_credential(sealed, private)

    def _private(self, key_id: str, blob: bytes) -> bytes:
        with self._guard:
            cached = self._opened.get(key_id)
        if cached is not None:
            return cached
        try:
            private = self._envelope.decrypt(sealed_record_id("seal_keys", key_id), blob)
        except EnvelopeError as exc:
            raise SealedFileError(f"the broker's seal key {key_id}: {exc}") from None
        with self._guard:
            self._opened[key_id] = private
        return private
