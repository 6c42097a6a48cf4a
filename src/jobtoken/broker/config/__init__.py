"""The broker's configuration file: TOML, strict, with a safe default for every setting.

The file is TOML (``tomllib`` on Python 3.11+, the ``tomli`` backport on 3.10 — a
conditional dependency of the ``broker`` extra). Loading is strict: an unknown key or
table, or a value of the wrong type or out of range, is an error naming the key, so
a typo never silently falls back to a default.

Secrets never appear in the file. Where a setting is a secret (the master key, an
introspection client's secret, the webhook secret, the GitHub token for policy fetch,
a PostgreSQL DSN), the file names where to read it: ``<name>_file`` (a path, relative
to the config file) or ``<name>_env`` (an environment variable) — exactly one. A key
that looks like an inline secret is refused with a message saying so.

``examples/broker/broker.toml`` documents every key with its default.

Public API: :func:`load_config`, :class:`BrokerConfig` and its parts,
:class:`SecretRef`, :class:`ConfigError`, :func:`looks_unconfigured` (a ``public_url``
still an example's), all importable from here. This module
holds :func:`load_config` (read, size cap, TOML decode); the rest of the package:
``model`` (the dataclasses), ``toml_table`` (the strict table reader), ``sections``
(one builder per section), ``secret_ref`` (secret references), ``errors``.
"""

from __future__ import annotations

from pathlib import Path

from jobtoken.broker.config.errors import ConfigError
from jobtoken.broker.config.model import (
    PLACEHOLDER_PUBLIC_URL,
    BrokerConfig,
    ClientConfig,
    KeysConfig,
    LimitsConfig,
    OidcConfig,
    PolicyConfig,
    ProxyConfig,
    ServerConfig,
    StoreConfig,
    TokensConfig,
    WebhookConfig,
    looks_unconfigured,
)
from jobtoken.broker.config.secret_ref import MAX_SECRET_BYTES as MAX_SECRET_BYTES
from jobtoken.broker.config.secret_ref import SecretRef
from jobtoken.broker.config.sections import parse_document
from jobtoken.broker.ops.strict_toml import tomllib

__all__ = [
    "PLACEHOLDER_PUBLIC_URL",
    "BrokerConfig",
    "ClientConfig",
    "ConfigError",
    "KeysConfig",
    "LimitsConfig",
    "OidcConfig",
    "PolicyConfig",
    "ProxyConfig",
    "SecretRef",
    "ServerConfig",
    "StoreConfig",
    "TokensConfig",
    "WebhookConfig",
    "load_config",
    "looks_unconfigured",
]

MAX_CONFIG_BYTES = 1024 * 1024


def load_config(path: Path) -> BrokerConfig:
    """Read and validate the config file; raises :class:`ConfigError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than 1 MiB")
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_document(document, path)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
