"""The one error of the config loader: :class:`ConfigError`."""

from __future__ import annotations

from jobtoken.broker.errors import BrokerFailure

__all__ = ["ConfigError"]


class ConfigError(BrokerFailure):
    """The configuration is unusable; the message names the key and what to change."""
