"""Reading a secret an admin hands a command: from a file or stdin, never from argv
(where ``ps`` and shell history would see it). Standard library only: ``jobtoken seal``
uses it without the broker's libraries.

Public API: :func:`read_secret_file`, :data:`MAX_CREDENTIAL_BYTES`.
"""

from __future__ import annotations

import sys

__all__ = ["MAX_CREDENTIAL_BYTES", "read_secret_file"]

MAX_CREDENTIAL_BYTES = 64 * 1024


def read_secret_file(source: str) -> bytes:
    """A secret from a file or stdin ("-"): at most 64 KiB of UTF-8, stripped."""
    if source == "-":
        data = sys.stdin.buffer.read(MAX_CREDENTIAL_BYTES + 1)
    else:
        with open(source, "rb") as handle:
            data = handle.read(MAX_CREDENTIAL_BYTES + 1)
    if len(data) > MAX_CREDENTIAL_BYTES:
        raise ValueError("the credential is larger than 64 KiB")
    value = data.strip()
    if not value:
        raise ValueError("the credential is empty")
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the credential must be UTF-8 text") from None
    return value
