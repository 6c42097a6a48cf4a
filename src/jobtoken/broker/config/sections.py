"""The section builders: from the TOML document to a :class:`model.BrokerConfig`, table by table.

:func:`parse_document` reads the root table; each ``[section]`` has a builder that
reads its keys through :class:`~jobtoken.broker.config.toml_table.Table` (type and
range checks, unknown keys refused) and applies the section's own rules (URLs,
issuers, required secrets). Errors are :class:`ValueError` naming the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jobtoken.broker.config import model
from jobtoken.broker.config.connector_section import connectors_of
from jobtoken.broker.config.secret_ref import SecretRef
from jobtoken.broker.config.toml_table import Table

__all__ = ["parse_document"]


def parse_document(document: Mapping[str, Any], path: Path) -> model.BrokerConfig:
    """The config in ``document`` (decoded TOML); relative paths are from ``path``'s folder."""
    base = path.resolve().parent
    root = Table(document, "", base)
    config = model.BrokerConfig(
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
        limits=_limits(root.table("limits")),
        connectors=connectors_of(root.table("connectors")),
    )
    root.done()
    if len({c.id for c in config.clients}) != len(config.clients):
        raise ValueError("[introspection_clients] each id may appear once")
    for client in config.clients:
        unknown = sorted(set(client.connectors) - set(config.connectors))
        if unknown:
            raise ValueError(
                f"[introspection_clients] {client.id}: connectors names {', '.join(unknown)}, "
                "which this broker does not configure"
            )
    return config


def _server(t: Table) -> model.ServerConfig:
    d = model.ServerConfig()
    host = t.text("host", d.host)
    port = t.integer("port", d.port, 0, 65535)
    public_url = t.text("public_url", f"http://{host}:{port}")
    parts = urlsplit(public_url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query:
        raise ValueError("[server] public_url must be an absolute http(s) URL")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError("[server] public_url must be https:// (http only on loopback)")
    out = model.ServerConfig(
        host=host,
        port=port,
        public_url=public_url.rstrip("/"),
        max_body_bytes=t.integer("max_body_bytes", d.max_body_bytes, 1024, 1024 * 1024),
        log_level=t.choice("log_level", d.log_level, ("debug", "info", "warning", "error")),
        metrics_token=t.secret("metrics_token", "the bearer token that GET /metrics requires"),
    )
    t.done()
    return out


def _store(t: Table) -> model.StoreConfig:
    d = model.StoreConfig()
    kind = t.choice("kind", d.kind, ("sqlite", "postgres"))
    store_path = t.path("path", d.path)
    assert store_path is not None
    dsn = t.secret("dsn", "the PostgreSQL DSN")
    t.done()
    if kind == "postgres" and dsn is None:
        raise ValueError("[store] kind = 'postgres' needs dsn_file or dsn_env")
    return model.StoreConfig(kind=kind, path=store_path, dsn=dsn)


def _keys(t: Table) -> model.KeysConfig:
    d = model.KeysConfig()
    master = t.secret("master_key", "the master key")
    previous = [
        SecretRef("a previous master key", file=p)
        for p in (t.resolve(v) for v in t.strings("previous_master_key_files", ()))
    ]
    previous += [
        SecretRef("a previous master key", env=e) for e in t.strings("previous_master_key_envs", ())
    ]
    out = model.KeysConfig(
        master_key=master,
        previous_master_keys=tuple(previous),
        signing_algorithm=t.choice("signing_algorithm", d.signing_algorithm, ("EdDSA", "ES256")),
        signing_key_refresh_seconds=t.integer(
            "signing_key_refresh_seconds", d.signing_key_refresh_seconds, 1, 3600
        ),
    )
    t.done()
    return out


def _oidc(t: Table) -> model.OidcConfig:
    d = model.OidcConfig()
    out = model.OidcConfig(
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


def _tokens(t: Table) -> model.TokensConfig:
    d = model.TokensConfig()
    out = model.TokensConfig(
        max_ttl_seconds=t.integer("max_ttl_seconds", d.max_ttl_seconds, 60, 24 * 3600),
        default_ttl_seconds=t.integer("default_ttl_seconds", d.default_ttl_seconds, 60, 24 * 3600),
        retention_seconds=t.integer("retention_seconds", d.retention_seconds, 0, 366 * 24 * 3600),
    )
    t.done()
    return out


def _client(t: Table) -> model.ClientConfig:
    client_id = t.text("id", "")
    secret = t.secret("secret", f"the secret of introspection client {client_id!r}")
    role = t.choice("role", "resource-server", ("admin", "resource-server"))
    connectors = t.strings("connectors", ())
    t.done()
    if not client_id or ":" in client_id:
        raise ValueError("[introspection_clients] id must be non-empty and hold no ':'")
    if secret is None:
        raise ValueError(f"[introspection_clients] {client_id}: set secret_file or secret_env")
    return model.ClientConfig(id=client_id, secret=secret, role=role, connectors=connectors)


def _webhook(t: Table) -> model.WebhookConfig:
    d = model.WebhookConfig()
    out = model.WebhookConfig(
        secret=t.secret("secret", "the webhook secret"),
        max_body_bytes=t.integer("max_body_bytes", d.max_body_bytes, 1024, 25 * 1024 * 1024),
    )
    t.done()
    return out


def _policy(t: Table) -> model.PolicyConfig:
    d = model.PolicyConfig()
    directory = t.path("directory", d.directory)
    assert directory is not None
    out = model.PolicyConfig(
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


def _proxy(t: Table) -> model.ProxyConfig:
    d = model.ProxyConfig()
    out = model.ProxyConfig(
        timeout_seconds=t.integer("timeout_seconds", d.timeout_seconds, 1, 300),
        max_request_bytes=t.integer("max_request_bytes", d.max_request_bytes, 0, 100 * 1024 * 1024),
        max_response_bytes=t.integer(
            "max_response_bytes", d.max_response_bytes, 1024, 1024 * 1024 * 1024
        ),
    )
    t.done()
    return out


def _limits(t: Table) -> model.LimitsConfig:
    d = model.LimitsConfig()
    config = model.LimitsConfig(
        client_rate=t.integer("client_rate", d.client_rate, 0, 100_000),
        client_burst=t.integer("client_burst", d.client_burst, 1, 1_000_000),
        repository_rate=t.integer("repository_rate", d.repository_rate, 0, 100_000),
        repository_burst=t.integer("repository_burst", d.repository_burst, 1, 1_000_000),
    )
    t.done()
    return config
