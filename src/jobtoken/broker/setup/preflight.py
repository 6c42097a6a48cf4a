"""The broker's start-up checks: everything a loaded config still leaves to chance,
found before the first request instead of at it, and every problem at once.

:func:`preflight` runs, in order, and collects :class:`Finding`\\ s (never stopping at
the first):

1. the secrets the config names can be read: master key(s), introspection client
   secrets, the webhook secret, the metrics token, the GitHub token of the policy
   fetch (a secret's value never appears in a finding);
2. the store opens and its schema is this release's (an SQLite file that does not
   exist yet is fine: ``serve`` creates it);
3. the policies: the policy directory exists and every ``<owner>/<name>.yml`` in it,
   and the organization file, parse (each error names its file and line); a file
   ``serve`` never reads (not lower case, not ``.yml``, not at ``<owner>/<name>``) and
   one whose ``repository`` is not the one its path is read for are errors
   (:func:`policies_read` lists what ``serve`` reads);
4. each connector whose tokens need the stored upstream credential (``passthrough``,
   a ``base_url`` to proxy to, or an OAuth or GitHub App credential) has one, and it
   opens with the master key; a ``credential_sealed_file`` opens with the broker's
   seal key (opened to check, neither kept nor audited); an ``oauth2-refresh``
   connector is connected and its grant is alive;
5. settings that work but are likely a mistake: ``public_url`` still the
   example's, loopback test issuers, a wildcard ``event_name`` in a policy;
6. with ``reach_issuers``: each trusted issuer's JWKS can be fetched now.

``jobtoken broker check`` prints the findings and fails on an error; ``serve`` logs
them at start as warnings and errors (a fatal one has stopped it already).

Public API: :func:`preflight`, :func:`policies_read`, :class:`Finding`,
:data:`PLACEHOLDER_PUBLIC_URL`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from jobtoken.broker.assembly import open_configured_store, open_envelope, verifier_config
from jobtoken.broker.audit.chain import AuditLog
from jobtoken.broker.config import (
    PLACEHOLDER_PUBLIC_URL,
    BrokerConfig,
    ConfigError,
    looks_unconfigured,
)
from jobtoken.broker.connectors.credentials import ConnectorCredentials, CredentialUnusable
from jobtoken.broker.connectors.model import Connector
from jobtoken.broker.oidc.jwks import JwksError
from jobtoken.broker.oidc.verifier import IdTokenVerifier, InMemoryJtiStore
from jobtoken.broker.store import GRANT_NEEDS_REAUTHORIZATION, SqlStore, StoreError
from jobtoken.policy.lint import broad_grants
from jobtoken.policy.schema import RepositoryPolicy, check_policy_file
from jobtoken.policy.sources import PolicyDirectory, directory_contents

__all__ = ["PLACEHOLDER_PUBLIC_URL", "Finding", "policies_read", "preflight"]

#: most errors and warnings reported of one policy file
MAX_POLICY_FINDINGS = 100


@dataclass(frozen=True)
class Finding:
    level: str  # "error" (the broker cannot do its job) or "warning"
    text: str


def preflight(config: BrokerConfig, *, reach_issuers: bool = False) -> list[Finding]:
    """Every problem of ``config`` that loading it did not find (see the module)."""
    findings = list(_secrets(config))
    findings += _store_and_credentials(config)
    findings += _policies(config)
    findings += _likely_mistakes(config)
    if reach_issuers:
        findings += _issuers(config)
    return findings


def _secrets(config: BrokerConfig) -> Iterator[Finding]:
    checks: list[tuple[str, Callable[[], object]]] = [("master key", lambda: open_envelope(config))]
    checks += [(f"introspection client {c.id}", c.secret.read) for c in config.clients]
    for what, ref in (
        ("webhook secret", config.webhook.secret),
        ("metrics token", config.server.metrics_token),
        ("policy GitHub token", config.policy.github_token),
    ):
        if ref is not None:
            checks.append((what, ref.read))
    for what, read in checks:
        try:
            read()
        except ConfigError as exc:
            yield Finding("error", f"{what}: {exc}")


def _store_and_credentials(config: BrokerConfig) -> Iterator[Finding]:
    needing = [c for c in config.connectors.values() if c.needs_credential]
    if config.store.kind == "sqlite" and not config.store.path.exists():
        for connector in needing:
            yield _missing_credential(config, connector)
        return
    try:
        store = open_configured_store(config)
    except (ConfigError, StoreError) as exc:
        yield Finding("error", f"store: {exc}")
        return
    try:
        envelope = open_envelope(config)
    except ConfigError:
        envelope = None  # reported with the secrets
    try:
        credentials = ConnectorCredentials(store, envelope, AuditLog(store)) if envelope else None
        for connector in needing:
            if credentials is not None:
                yield from _credential(config, credentials, connector)
            elif connector.credential_sealed_file is None and not store.get_credential(
                connector.name
            ):
                yield _missing_credential(config, connector)
        yield from _grants(config, store)
    except StoreError as exc:
        yield Finding("error", f"store: {exc}")
    finally:
        store.close()


def _credential(
    config: BrokerConfig, credentials: ConnectorCredentials, connector: Connector
) -> Iterator[Finding]:
    """The connector's credential does not open (opened to check, not kept or audited)."""
    try:
        credentials.require_usable(connector)
    except CredentialUnusable as exc:
        if exc.reason == "credential_missing":
            yield _missing_credential(config, connector)
        elif connector.credential_sealed_file is not None:
            yield Finding("error", exc.text)
        else:
            yield Finding(
                "error",
                f"connector {connector.name}: its stored credential does not open with "
                "the master key (set it again, or add the key it was sealed with to "
                "previous_master_key_files)",
            )


def _grants(config: BrokerConfig, store: SqlStore) -> Iterator[Finding]:
    """An OAuth refresh connector never connected, or whose grant is dead."""
    states = {row.connector: row.state for row in store.grants()}
    for connector in config.connectors.values():
        if connector.credential != "oauth2-refresh":
            continue
        state = states.get(connector.name)
        if state is None or state == GRANT_NEEDS_REAUTHORIZATION:
            what = "is not connected" if state is None else "needs re-authorization"
            yield Finding(
                "error",
                f"connector {connector.name} {what}; jobs asking for it are refused until "
                f"`jobtoken broker connect {connector.name} --config {config.path} --port "
                "PORT` (PORT: the one in the redirect URL registered with the provider)",
            )


def _missing_credential(config: BrokerConfig, connector: Connector) -> Finding:
    name, sealed_file = connector.name, connector.credential_sealed_file
    if sealed_file is not None:
        return Finding(
            "error",
            f"connector {name}: its credential_sealed_file {sealed_file} cannot be opened: "
            f"the broker has no seal key yet; run `jobtoken broker seal-key --config "
            f"{config.path}` and seal the credential with `jobtoken seal --key KEY`",
        )
    return Finding(
        "error",
        f"connector {name}: no credential stored; jobs asking for it are refused until "
        f"`jobtoken broker connector set {name} --config {config.path} --credential-file -` "
        "(or name a credential_sealed_file)",
    )


def policies_read(config: BrokerConfig) -> PolicyDirectory:
    """The files of the policy directory ``serve`` reads (and for which repository),
    and those it ignores and why; empty unless the policies come from a directory."""
    if config.policy.source != "directory":
        return PolicyDirectory()
    besides = (config.policy.organization_file,) if config.policy.organization_file else ()
    return directory_contents(config.policy.directory, besides=besides)


def _policies(config: BrokerConfig) -> Iterator[Finding]:
    read: dict[Path, str] = {}
    if config.policy.source == "directory":
        directory = config.policy.directory
        contents = policies_read(config)
        read = contents.read
        if not directory.is_dir():
            yield Finding(
                "error",
                f"policy: the directory {directory} does not exist; every request is refused "
                "until it holds <owner>/<name>.yml files",
            )
        elif not read:
            yield Finding(
                "warning",
                f"policy: {directory} holds no <owner>/<name>.yml file: every request is refused",
            )
        for path, why in list(contents.ignored.items())[:MAX_POLICY_FINDINGS]:
            yield Finding("error", f"policy: {path} is never read: {why}")
    files = list(read)
    if config.policy.organization_file is not None:
        files.append(config.policy.organization_file)
    for path in files:
        checked = check_policy_file(path)  # every error of the file, not the first only
        for error in sorted(checked.errors, key=lambda e: e.line)[:MAX_POLICY_FINDINGS]:
            yield Finding("error", f"policy: {error}")
        if checked.policy is None:
            continue
        read_for = read.get(path)
        if isinstance(checked.policy, RepositoryPolicy) and read_for is not None:
            named = checked.policy.repository
            if named.lower() != read_for:
                yield Finding(
                    "error",
                    f"policy: {path} names the repository {named}, but the broker reads it "
                    f"only for {read_for} (its path), whose jobs it then refuses; move it to "
                    f"{config.policy.directory / named.lower()}.yml",
                )
        for warning in broad_grants(checked.policy)[:MAX_POLICY_FINDINGS]:
            yield Finding("warning", f"policy: {warning}")


def _likely_mistakes(config: BrokerConfig) -> Iterator[Finding]:
    if looks_unconfigured(config.server.public_url):
        yield Finding(
            "warning",
            f"server.public_url is still the example's {config.server.public_url}: set it "
            "to the URL jobs reach the broker at (it is also the ID tokens' audience); "
            "`serve` refuses it without --dev",
        )
    if config.oidc.loopback_test_issuers:
        yield Finding(
            "warning",
            "oidc.loopback_test_issuers is set: plain-http test issuers are trusted (for "
            "tests and demos only)",
        )


def _issuers(config: BrokerConfig) -> Iterator[Finding]:
    verifier = IdTokenVerifier(verifier_config(config), InMemoryJtiStore())
    for issuer in verifier.config.issuers:
        try:  # a key id no issuer has: answered from a fresh fetch of its key set
            verifier.key_set(issuer.url).key_for("jobtoken-preflight-probe")
        except JwksError as exc:
            if exc.reason != "unknown_key":
                yield Finding("error", f"issuer {issuer.url}: {exc.description}")
