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
:class:`SecretRef`, :class:`ConfigError`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from jobtoken.broker.connectors import OFFLINE_MINTED_MAX_TTL, Connector, Route

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "BrokerConfig",
    "ClientConfig",
    "ConfigError",
    "KeysConfig",
    "OidcConfig",
    "PolicyConfig",
    "ProxyConfig",
    "SecretRef",
    "ServerConfig",
    "StoreConfig",
    "TokensConfig",
    "WebhookConfig",
    "load_config",
]

_T = TypeVar("_T")

MAX_CONFIG_BYTES = 1024 * 1024
MAX_SECRET_BYTES = 64 * 1024
_INLINE_SECRET_WORDS = ("secret", "password", "token", "master_key", "credential", "dsn")


class ConfigError(Exception):
    """The configuration is unusable; the message names the key and what to change."""


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: a file or an environment variable, never the config text."""

    what: str
    file: Path | None = None
    env: str | None = None

    def read(self) -> str:
        if self.file is not None:
            try:
                data = self.file.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read {self.what} from {self.file}: {exc.strerror}"
                ) from None
            if len(data) > MAX_SECRET_BYTES:
                raise ConfigError(f"{self.what} file {self.file} is larger than 64 KiB")
            try:
                value = data.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise ConfigError(f"{self.what} file {self.file} is not UTF-8") from None
        else:
            assert self.env is not None
            value = os.environ.get(self.env, "").strip()
        if not value:
            where = self.file if self.file is not None else f"environment variable {self.env}"
            raise ConfigError(f"{self.what} is empty or missing ({where})")
        return value


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = 64 * 1024
    log_level: str = "info"


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
    connectors: Mapping[str, Connector] = field(default_factory=dict)

    @property
    def audience(self) -> str:
        return self.oidc.audience or self.server.public_url


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
        return _parse(document, path)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


class _Table:
    """One TOML table, read key by key; :meth:`done` refuses keys nobody asked for."""

    def __init__(self, data: Mapping[str, Any], where: str, base: Path) -> None:
        self._data, self.where, self._base = data, where, base
        self._seen: set[str] = set()

    def _get(self, key: str, kind: type | tuple[type, ...], label: str) -> Any:
        self._seen.add(key)
        value = self._data.get(key)
        if value is not None and (
            not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
        ):
            raise ValueError(f"[{self.where}] {key} must be {label}")
        return value

    def text(self, key: str, default: str) -> str:
        value = self._get(key, str, "a string")
        return default if value is None else str(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in choices:
            raise ValueError(f"[{self.where}] {key} must be one of {', '.join(choices)}")
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._get(key, int, "an integer")
        value = default if value is None else value
        if not low <= value <= high:
            raise ValueError(f"[{self.where}] {key} must be between {low} and {high}")
        return int(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, bool, "true or false")
        return default if value is None else bool(value)

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(key, list, "a list of strings")
        if value is None:
            return default
        if not all(isinstance(v, str) for v in value):
            raise ValueError(f"[{self.where}] {key} must be a list of strings")
        return tuple(value)

    def path(self, key: str, default: Path | None) -> Path | None:
        value = self._get(key, str, "a path")
        if value is None:
            return default if default is None else self.resolve(str(default))
        return self.resolve(value)

    def resolve(self, value: str) -> Path:
        return self._base / Path(value).expanduser()

    def names(self) -> list[str]:
        self._seen.update(self._data)
        return list(self._data)

    def table(self, key: str) -> _Table:
        value = self._get(key, dict, "a table")
        return _Table(value or {}, f"{self.where}.{key}" if self.where else key, self._base)

    def tables(self, key: str) -> list[_Table]:
        value = self._get(key, list, "an array of tables")
        out = []
        for i, item in enumerate(value or []):
            if not isinstance(item, dict):
                raise ValueError(f"[{self.where}] {key} entries must be tables")
            out.append(_Table(item, f"{self.where}.{key}[{i}]", self._base))
        return out

    def secret(self, name: str, what: str) -> SecretRef | None:
        file = self.path(f"{name}_file", None)
        env = self._get(f"{name}_env", str, "an environment variable name")
        if file is not None and env is not None:
            raise ValueError(f"[{self.where}] set {name}_file or {name}_env, not both")
        if file is None and env is None:
            return None
        return SecretRef(what=what, file=file, env=env)

    def done(self) -> None:
        for key in self._data:
            if key in self._seen:
                continue
            if any(word in key.lower() for word in _INLINE_SECRET_WORDS):
                raise ValueError(
                    f"[{self.where}] {key}: secrets are never written in the config file; "
                    "use <name>_file or <name>_env (see examples/broker/broker.toml)"
                )
            raise ValueError(f"[{self.where}] unknown key {key!r}")


def _parse(document: Mapping[str, Any], path: Path) -> BrokerConfig:
    base = path.resolve().parent
    root = _Table(document, "", base)
    config = BrokerConfig(
        path=path,
        server=_server(root.table("server")),
        store=_store(root.table("store")),
        keys=_keys(root.table("keys")),
        oidc=_oidc(root.table("oidc")),
        tokens=_tokens(root.table("tokens")),
        clients=tuple(_client(t) for t in root.tables("introspection_clients")),
        webhook=_webhook(root.table("webhook")),
        policy=_policy(root.table("policy")),
        proxy=_proxy(root.table("proxy")),
        connectors=_connectors(root.table("connectors")),
    )
    root.done()
    if len({c.id for c in config.clients}) != len(config.clients):
        raise ValueError("[introspection_clients] each id may appear once")
    return config


def _server(t: _Table) -> ServerConfig:
    d = ServerConfig()
    host = t.text("host", d.host)
    port = t.integer("port", d.port, 0, 65535)
    public_url = t.text("public_url", f"http://{host}:{port}")
    parts = urlsplit(public_url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query:
        raise ValueError("[server] public_url must be an absolute http(s) URL")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError("[server] public_url must be https:// (http only on loopback)")
    out = ServerConfig(
        host=host,
        port=port,
        public_url=public_url.rstrip("/"),
        max_body_bytes=t.integer("max_body_bytes", d.max_body_bytes, 1024, 1024 * 1024),
        log_level=t.choice("log_level", d.log_level, ("debug", "info", "warning", "error")),
    )
    t.done()
    return out


def _store(t: _Table) -> StoreConfig:
    d = StoreConfig()
    kind = t.choice("kind", d.kind, ("sqlite", "postgres"))
    store_path = t.path("path", d.path)
    assert store_path is not None
    dsn = t.secret("dsn", "the PostgreSQL DSN")
    t.done()
    if kind == "postgres" and dsn is None:
        raise ValueError("[store] kind = 'postgres' needs dsn_file or dsn_env")
    return StoreConfig(kind=kind, path=store_path, dsn=dsn)


def _keys(t: _Table) -> KeysConfig:
    d = KeysConfig()
    master = t.secret("master_key", "the master key")
    previous = [
        SecretRef("a previous master key", file=p)
        for p in (t.resolve(v) for v in t.strings("previous_master_key_files", ()))
    ]
    previous += [
        SecretRef("a previous master key", env=e) for e in t.strings("previous_master_key_envs", ())
    ]
    out = KeysConfig(
        master_key=master,
        previous_master_keys=tuple(previous),
        signing_algorithm=t.choice("signing_algorithm", d.signing_algorithm, ("EdDSA", "ES256")),
        signing_key_refresh_seconds=t.integer(
            "signing_key_refresh_seconds", d.signing_key_refresh_seconds, 1, 3600
        ),
    )
    t.done()
    return out


def _oidc(t: _Table) -> OidcConfig:
    d = OidcConfig()
    out = OidcConfig(
        audience=t.text("audience", d.audience),
        issuers=t.strings("issuers", d.issuers),
        loopback_test_issuers=t.strings("loopback_test_issuers", ()),
        leeway_seconds=t.integer("leeway_seconds", d.leeway_seconds, 0, 60),
        max_token_lifetime_seconds=t.integer(
            "max_token_lifetime_seconds", d.max_token_lifetime_seconds, 60, 6 * 3600
        ),
        jwks_refetch_interval_seconds=t.integer(
            "jwks_refetch_interval_seconds", d.jwks_refetch_interval_seconds, 1, 86400
        ),
    )
    t.done()
    for url in out.issuers:
        if not url.startswith("https://"):
            raise ValueError(f"[oidc] issuer {url!r} must be https:// (see loopback_test_issuers)")
    for url in out.loopback_test_issuers:
        if urlsplit(url).hostname not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"[oidc] loopback_test_issuers entry {url!r} is not on loopback")
    if not out.issuers and not out.loopback_test_issuers:
        raise ValueError("[oidc] configure at least one issuer")
    return out


def _tokens(t: _Table) -> TokensConfig:
    d = TokensConfig()
    out = TokensConfig(
        max_ttl_seconds=t.integer("max_ttl_seconds", d.max_ttl_seconds, 60, 24 * 3600),
        default_ttl_seconds=t.integer("default_ttl_seconds", d.default_ttl_seconds, 60, 24 * 3600),
        retention_seconds=t.integer("retention_seconds", d.retention_seconds, 0, 366 * 24 * 3600),
    )
    t.done()
    return out


def _client(t: _Table) -> ClientConfig:
    client_id = t.text("id", "")
    secret = t.secret("secret", f"the secret of introspection client {client_id!r}")
    role = t.choice("role", "resource-server", ("admin", "resource-server"))
    t.done()
    if not client_id or ":" in client_id:
        raise ValueError("[introspection_clients] id must be non-empty and hold no ':'")
    if secret is None:
        raise ValueError(f"[introspection_clients] {client_id}: set secret_file or secret_env")
    return ClientConfig(id=client_id, secret=secret, role=role)


def _webhook(t: _Table) -> WebhookConfig:
    d = WebhookConfig()
    out = WebhookConfig(
        secret=t.secret("secret", "the webhook secret"),
        max_body_bytes=t.integer("max_body_bytes", d.max_body_bytes, 1024, 25 * 1024 * 1024),
    )
    t.done()
    return out


def _policy(t: _Table) -> PolicyConfig:
    d = PolicyConfig()
    directory = t.path("directory", d.directory)
    assert directory is not None
    out = PolicyConfig(
        source=t.choice("source", d.source, ("directory", "github")),
        directory=directory,
        organization_file=t.path("organization_file", None),
        github_api_url=t.text("github_api_url", d.github_api_url).rstrip("/"),
        github_path=t.text("github_path", d.github_path),
        github_token=t.secret("github_token", "the GitHub token for policy fetch"),
        cache_seconds=t.integer("cache_seconds", d.cache_seconds, 0, 3600),
    )
    t.done()
    return out


def _proxy(t: _Table) -> ProxyConfig:
    d = ProxyConfig()
    out = ProxyConfig(
        timeout_seconds=t.integer("timeout_seconds", d.timeout_seconds, 1, 300),
        max_request_bytes=t.integer("max_request_bytes", d.max_request_bytes, 0, 100 * 1024 * 1024),
        max_response_bytes=t.integer(
            "max_response_bytes", d.max_response_bytes, 1024, 1024 * 1024 * 1024
        ),
    )
    t.done()
    return out


def _connectors(t: _Table) -> dict[str, Connector]:
    out: dict[str, Connector] = {}
    for name in t.names():
        c = t.table(name)
        routes = tuple(_checked(r, _route) for r in c.tables("routes"))
        out[name] = _checked(c, lambda c, name=name, routes=routes: _connector(c, name, routes))  # type: ignore[misc]
    return out


def _route(r: _Table) -> Route:
    return Route(r.text("method", "GET"), r.text("path", ""), r.text("scope", ""))


def _connector(c: _Table, name: str, routes: tuple[Route, ...]) -> Connector:
    default = Connector(name="default")
    kind = c.choice("kind", default.kind, ("minted", "passthrough"))
    base_url = c.text("base_url", "").rstrip("/")
    offline = kind == "minted" and not base_url  # only the TTL bounds it (docs/security.md)
    default_ttl = OFFLINE_MINTED_MAX_TTL if offline else default.max_ttl
    return Connector(
        name=name,
        kind=kind,
        max_ttl=c.integer("max_ttl_seconds", default_ttl, 60, 24 * 3600),
        scopes=c.strings("scopes", ()),
        base_url=base_url,
        auth_header=c.text("auth_header", default.auth_header),
        auth_scheme=c.text("auth_scheme", default.auth_scheme),
        allow_passthrough=c.flag("allow_passthrough", False),
        routes=routes,
    )


def _checked(table: _Table, build: Callable[[_Table], _T]) -> _T:
    """Build a value from ``table``, then refuse its unknown keys; errors name the table."""
    try:
        value = build(table)
    except ValueError as exc:
        message = str(exc)
        raise ValueError(
            message if message.startswith("[") else f"[{table.where}] {message}"
        ) from None
    table.done()
    return value
