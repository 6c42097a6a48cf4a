"""The refusal of an ID token: :class:`InvalidIdToken`, raised by every check of
``jobtoken.broker.oidc.verifier`` (its docstring lists the ``reason`` codes).
"""

from __future__ import annotations

from jobtoken.broker.errors import BrokerError

__all__ = ["InvalidIdToken"]


class InvalidIdToken(BrokerError):
    """The ID token is refused (``invalid_grant``). ``reason``: machine code;
    ``description``: what to fix."""

    def __init__(self, reason: str, description: str) -> None:
        super().__init__("invalid_grant", description, reason=reason)
