"""The broker assembled from its config: store, envelope, keys, verifier, policy, exchange.

:meth:`Broker.from_config` reads every secret the config points at (master keys,
introspection client secrets, webhook secret, GitHub token) once, at start, and fails
with a :class:`~jobtoken.broker.config.ConfigError` naming what is missing.

Public API: :class:`Broker`, :func:`open_envelope`, :func:`open_configured_store`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from jobtoken.broker.audit.chain import AuditLog
from jobtoken.broker.config import BrokerConfig, ConfigError
from jobtoken.broker.connectors.credentials import ConnectorCredentials
from jobtoken.broker.connectors.model import Connector
from jobtoken.broker.oidc.jwks import TrustedIssuer
from jobtoken.broker.oidc.verifier import IdTokenVerifier, VerifiedClaims, VerifierConfig
from jobtoken.broker.ops.metrics import Metrics
from jobtoken.broker.ops.rate_limits import RateLimiter
from jobtoken.broker.secrets.envelope import Envelope, EnvelopeError, MasterKey
from jobtoken.broker.store import SqlStore, StoreError, open_store
from jobtoken.broker.tokens.exchange import PolicyDecider, TokenExchange
from jobtoken.broker.tokens.registry import TokenRegistry
from jobtoken.broker.tokens.signing import SigningKeys, TokenSigner
from jobtoken.broker.upstream.exchange_side import ExchangeUpstream
from jobtoken.broker.upstream.grants import UpstreamGrants
from jobtoken.broker.upstream.job_tokens import JobUpstreamTokens
from jobtoken.broker.upstream.oauth_client import AuthorizationServerClient
from jobtoken.policy.errors import PolicyError
from jobtoken.policy.evaluate import PolicyDecision, evaluate
from jobtoken.policy.schema import OrgPolicy, load_org_policy
from jobtoken.policy.sources import DirectoryPolicySource, PolicySource

__all__ = ["Broker", "open_configured_store", "open_envelope", "verifier_config"]


def open_envelope(config: BrokerConfig) -> Envelope:
    if config.keys.master_key is None:
        raise ConfigError(
            f"{config.path}: [keys] set master_key_file or master_key_env (the master key "
            "that seals connector credentials and signing keys)"
        )
    try:
        current = MasterKey.from_text(config.keys.master_key.read(), origin="keys.master_key")
        previous = tuple(
            MasterKey.from_text(ref.read(), origin="keys.previous_master_key")
            for ref in config.keys.previous_master_keys
        )
    except EnvelopeError as exc:
        raise ConfigError(str(exc)) from None
    return Envelope(current, previous)


def open_configured_store(config: BrokerConfig, *, migrate: bool = False) -> SqlStore:
    dsn = config.store.dsn.read() if config.store.dsn is not None else None
    try:
        return open_store(config.store.kind, path=config.store.path, dsn=dsn, migrate=migrate)
    except StoreError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True, repr=False)
class IntrospectionClient:
    id: str
    secret: bytes
    role: str
    #: the connectors whose tokens it may introspect; empty: all
    connectors: frozenset[str] = frozenset()


@dataclass(repr=False)
class Broker:
    config: BrokerConfig
    store: SqlStore
    envelope: Envelope
    keys: SigningKeys
    signer: TokenSigner
    audit: AuditLog
    metrics: Metrics
    exchange: TokenExchange
    verifier: IdTokenVerifier
    registry: TokenRegistry
    clients: Mapping[str, IntrospectionClient]
    webhook_secret: bytes | None
    grants: UpstreamGrants
    app_tokens: JobUpstreamTokens
    credentials: ConnectorCredentials
    metrics_token: bytes | None = None

    @property
    def connectors(self) -> Mapping[str, Connector]:
        return self.config.connectors

    @classmethod
    def from_config(cls, config: BrokerConfig) -> Broker:
        envelope = open_envelope(config)
        clients = {
            c.id: IntrospectionClient(
                c.id, c.secret.read().encode("utf-8"), c.role, frozenset(c.connectors)
            )
            for c in config.clients
        }
        webhook = config.webhook.secret.read().encode() if config.webhook.secret else None
        metrics_token = config.server.metrics_token
        metrics_secret = metrics_token.read().encode("utf-8") if metrics_token else None
        policy = _policy_check(config)
        store = open_configured_store(config)
        verifier = IdTokenVerifier(verifier_config(config), store)
        metrics = Metrics()
        audit = AuditLog(store)
        keys = SigningKeys(
            store,
            envelope,
            alg=config.keys.signing_algorithm,
            refresh_seconds=config.keys.signing_key_refresh_seconds,
        )
        try:
            keys.ensure_current()
        except EnvelopeError as exc:
            raise ConfigError(str(exc)) from None
        signer = TokenSigner(keys, issuer=config.server.public_url)
        provider = AuthorizationServerClient(timeout_seconds=float(config.proxy.timeout_seconds))
        # one per process: every use of a connector's credential (and the audit of each
        # sealed file opened) goes through it
        credentials = ConnectorCredentials(store, envelope, audit)
        grants = UpstreamGrants(
            store=store,
            envelope=envelope,
            audit=audit,
            metrics=metrics,
            provider=provider,
            credentials=credentials,
        )
        app_tokens = JobUpstreamTokens(
            store, envelope, audit, dict(config.connectors), provider, credentials=credentials
        )
        exchange = TokenExchange(
            verifier=verifier,
            policy=policy,
            connectors=config.connectors,
            signer=signer,
            store=store,
            envelope=envelope,
            audit=audit,
            metrics=metrics,
            upstream=ExchangeUpstream(grants, app_tokens),
            default_ttl=config.tokens.default_ttl_seconds,
            max_ttl=config.tokens.max_ttl_seconds,
            repository_limit=RateLimiter(
                config.limits.repository_rate, config.limits.repository_burst
            ),
            credentials=credentials,
        )
        registry = TokenRegistry(
            store,
            audit,
            metrics,
            issuer=config.server.public_url,
            after_revoke=app_tokens.revoke_upstream,
        )
        return cls(
            config=config,
            store=store,
            envelope=envelope,
            keys=keys,
            signer=signer,
            audit=audit,
            metrics=metrics,
            exchange=exchange,
            verifier=verifier,
            registry=registry,
            clients=clients,
            webhook_secret=webhook,
            grants=grants,
            app_tokens=app_tokens,
            credentials=credentials,
            metrics_token=metrics_secret,
        )

    def metrics_allowed(self, authorization: str) -> bool:
        """True when /metrics is open, or `authorization` carries its bearer token."""
        if self.metrics_token is None:
            return True
        scheme, _, presented = authorization.partition(" ")
        given = presented.strip().encode("latin-1")  # how Starlette decoded the header
        matches = hmac.compare_digest(given, self.metrics_token)
        return scheme.lower() == "bearer" and matches

    def authenticate_client(self, client_id: str, secret: str) -> IntrospectionClient | None:
        """The client if id and secret match; the comparison takes the same time either way."""
        client = self.clients.get(client_id)
        expected = client.secret if client is not None else b"\x00" * 32
        matches = hmac.compare_digest(expected, secret.encode("utf-8"))
        return client if client is not None and matches else None

    def close(self) -> None:
        self.grants.close()
        self.store.close()


def verifier_config(config: BrokerConfig) -> VerifierConfig:
    issuers = tuple(TrustedIssuer(url) for url in config.oidc.issuers) + tuple(
        TrustedIssuer(url, allow_http_loopback=True) for url in config.oidc.loopback_test_issuers
    )
    try:
        return VerifierConfig(
            issuers=issuers,
            audience=config.audience,
            leeway_seconds=config.oidc.leeway_seconds,
            max_token_lifetime_seconds=config.oidc.max_token_lifetime_seconds,
            jwks_refetch_interval_seconds=float(config.oidc.jwks_refetch_interval_seconds),
        )
    except ValueError as exc:
        raise ConfigError(f"{config.path}: [oidc] {exc}") from None


def _policy_source(config: BrokerConfig) -> PolicySource:
    if config.policy.source == "directory":
        return DirectoryPolicySource(config.policy.directory)
    from jobtoken.broker.upstream.github_policy_source import GitHubPolicySource

    if config.policy.github_token is None:
        raise ConfigError(
            f"{config.path}: [policy] source = 'github' needs github_token_file or "
            "github_token_env (a token with contents: read)"
        )
    try:
        return GitHubPolicySource(
            config.policy.github_api_url,
            config.policy.github_token.read(),
            path_in_repo=config.policy.github_path,
            cache_ttl=float(config.policy.cache_seconds),
        )
    except ValueError as exc:
        raise ConfigError(f"{config.path}: [policy] {exc}") from None


def _org_policy(config: BrokerConfig) -> OrgPolicy | None:
    path = config.policy.organization_file
    if path is None:
        return None
    try:
        return load_org_policy(path.read_bytes(), str(path))
    except OSError as exc:
        raise ConfigError(f"cannot read the organization policy {path}: {exc.strerror}") from None
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None


def _policy_check(config: BrokerConfig) -> PolicyDecider:
    source, org = _policy_source(config), _org_policy(config)

    def decide(
        claims: VerifiedClaims, connector: str, scopes: tuple[str, ...], ttl: int
    ) -> PolicyDecision:
        return evaluate(source, org, claims.claims, connector, scopes, ttl)

    return decide
