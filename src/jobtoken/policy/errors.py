"""Errors of the policy package; each message says what to fix."""

from __future__ import annotations

__all__ = ["PolicyError", "PolicySourceError"]


class PolicyError(ValueError):
    """A policy file is invalid: ``source`` (file name), ``line`` (1-based, 0 if unknown)."""

    def __init__(self, source: str, line: int, message: str) -> None:
        self.source = source
        self.line = line
        self.message = message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")


class PolicySourceError(Exception):
    """A policy source could not answer (unreachable, refused, timed out): deny.

    The message is safe to show the workflow author and names no credential.
    """
