"""The refusal of an ID token: :class:`InvalidIdToken`, raised by every check of
``jobtoken.broker.oidc.verifier`` (its docstring lists the ``reason`` codes).
"""

from __future__ import annotations

__all__ = ["InvalidIdToken"]


class InvalidIdToken(Exception):
    """The ID token is refused. ``reason``: machine code; ``description``: what to fix."""

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description
