"""Prove that code under test connects nowhere but loopback.

``with loopback_only() as connections:`` patches ``socket.socket.connect`` for
the block: every address connected to is appended to ``connections``, and a
connection to anything but 127.0.0.1 / ::1 (GitHub, 169.254.169.254, …)
raises ``AssertionError`` inside the code under test. On exit the block
itself fails if such an attempt was made, even if the code swallowed the
error. A test asserting "zero outbound requests" checks ``connections == []``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["LOOPBACK", "loopback_only"]

LOOPBACK = frozenset({"127.0.0.1", "::1"})


@contextmanager
def loopback_only() -> Iterator[list[Any]]:
    seen: list[Any] = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> None:
        seen.append(address)
        if not _is_loopback(address):
            raise AssertionError(f"outbound connection attempted to {address!r}")
        real_connect(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign, assignment]
    try:
        yield seen
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
    outbound = [address for address in seen if not _is_loopback(address)]
    if outbound:
        raise AssertionError(f"connections left loopback: {outbound!r}")


def _is_loopback(address: Any) -> bool:
    return isinstance(address, tuple) and address[0] in LOOPBACK
