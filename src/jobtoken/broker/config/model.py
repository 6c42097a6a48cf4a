"""The parsed configuration: :class:`BrokerConfig` and one frozen dataclass per section.

Each field's default is the setting's safe default; ``examples/broker/broker.toml``
documents every key with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from jobtoken.broker.config.secret_ref import SecretRef
from jobtoken.broker.connectors.model import Connector

__all__ = [
    "PLACEHOLDER_PUBLIC_URL",
    "BrokerConfig",
    "ClientConfig",
    "KeysConfig",
    "OidcConfig",
    "PolicyConfig",
    "ProxyConfig",
    "ServerConfig",
    "StoreConfig",
    "TokensConfig",
    "WebhookConfig",
    "looks_unconfigured",
]


#: the ``public_url`` of the example config and of ``broker init``
PLACEHOLDER_PUBLIC_URL = "https://tokens.example.com"

#: RFC 2606's example domains: a broker URL under one was never configured
_EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")


def looks_unconfigured(url: str) -> bool:
    """Whether ``url`` (a broker's ``public_url`` or audience) is still an example's:
    its host is one of RFC 2606's example domains or under one."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    return any(host == domain or host.endswith(f".{domain}") for domain in _EXAMPLE_DOMAINS)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = 64 * 1024
    log_level: str = "info"
    #: when set, `GET /metrics` needs `Authorization: Bearer <this token>`
    metrics_token: SecretRef | None = None


@dataclass(frozen=True)
class StoreConfig:
    kind: str = "sqlite"
    path: Path = Path("jobtoken-broker.db")
    dsn: SecretRef | None = None


@dataclass(frozen=True)
class KeysConfig:
    master_key: SecretRef | None = None
    previous_master_keys: tuple[SecretRef, ...] = ()
    signing_algorithm: str = "ES256"
    signing_key_refresh_seconds: int = 10


@dataclass(frozen=True)
class OidcConfig:
    audience: str = ""  # "" means server.public_url
    issuers: tuple[str, ...] = ("https://token.actions.githubusercontent.com",)
    loopback_test_issuers: tuple[str, ...] = ()
    leeway_seconds: int = 30
    max_token_lifetime_seconds: int = 900
    jwks_refetch_interval_seconds: int = 60


@dataclass(frozen=True)
class TokensConfig:
    max_ttl_seconds: int = 3600
    default_ttl_seconds: int = 900
    #: how long the store keeps a token row after it expired (then the purge deletes it)
    retention_seconds: int = 7 * 24 * 3600


@dataclass(frozen=True)
class ClientConfig:
    """An introspection client (RFC 7662 needs the caller to authenticate)."""

    id: str
    secret: SecretRef
    role: str = "resource-server"
    #: the connectors whose tokens this client may introspect; empty: all of them
    connectors: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebhookConfig:
    secret: SecretRef | None = None
    max_body_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class PolicyConfig:
    source: str = "directory"
    directory: Path = Path("policies")
    organization_file: Path | None = None
    github_api_url: str = "https://api.github.com"
    github_path: str = ".github/jobtoken.yml"
    github_token: SecretRef | None = None
    cache_seconds: int = 60


@dataclass(frozen=True)
class ProxyConfig:
    timeout_seconds: int = 30
    max_request_bytes: int = 1024 * 1024
    max_response_bytes: int = 10 * 1024 * 1024


@dataclass(frozen=True)
class LimitsConfig:
    """Token buckets (``rate`` per second, ``burst`` at once); a rate of 0 turns one off."""

    #: every request of one client address (off by default: behind a reverse proxy
    #: every request has the proxy's address)
    client_rate: int = 0
    client_burst: int = 1000
    #: exchanges of one repository (by its verified ``repository_id``)
    repository_rate: int = 50
    repository_burst: int = 1000


@dataclass(frozen=True)
class BrokerConfig:
    path: Path
    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    oidc: OidcConfig = field(default_factory=OidcConfig)
    tokens: TokensConfig = field(default_factory=TokensConfig)
    clients: tuple[ClientConfig, ...] = ()
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    connectors: Mapping[str, Connector] = field(default_factory=dict)

    @property
    def audience(self) -> str:
        return self.oidc.audience or self.server.public_url
