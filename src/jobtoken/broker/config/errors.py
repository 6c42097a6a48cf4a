"""The one error of the config loader: :class:`ConfigError`."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """The configuration is unusable; the message names the key and what to change."""
