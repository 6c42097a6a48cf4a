"""``jobtoken broker connector …`` and ``jobtoken broker connect``: a connector's
long-lived credential and its OAuth grant.

- ``connector set NAME --config FILE --credential-file PATH|-`` — seal and store the
  connector's credential, read from a file or stdin (never from argv, where ``ps`` and
  shell history would see it): the API key (``static``), the OAuth client secret
  (``oauth2-*``) or the app's private key (``github-app``); refused for a connector
  whose config names a ``credential_sealed_file`` (that file is its credential);
- ``connector list --config FILE [--json]`` — each connector's kind, credential,
  whether it is set, its grant's state, last refresh and access-token expiry;
- ``connect NAME --config FILE [--port N] [--redirect-host H] [--timeout S]`` — the
  authorization-code flow with PKCE on a loopback redirect (``authorization_flow.py``):
  it prints the URL to open, waits for the redirect, exchanges the code and stores the
  grant sealed; Ctrl-C ends it with one line and exit status 130;
- ``connect NAME --config FILE --no-browser`` — headless: the same flow, approved in
  a browser on any machine; the operator pastes the redirect URL from its address bar
  on stdin, checked as the listener checks a redirect (``state``, then PKCE);
- ``connect NAME --config FILE --refresh-token-file PATH|-`` — headless: refresh a
  refresh token got elsewhere once, to prove it works, and only then store the grant;
  a token the provider refuses, or a provider that does not answer, leaves the
  connector's grant untouched (nothing stored, nothing audited).

No command prints a token, a code or a secret.
"""

from __future__ import annotations

import argparse
import json
import select
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from jobtoken.broker.assembly import open_configured_store, open_envelope
from jobtoken.broker.audit.chain import AuditLog
from jobtoken.broker.config import BrokerConfig, ConfigError, load_config
from jobtoken.broker.connectors.credentials import ConnectorCredentials, CredentialUnusable
from jobtoken.broker.connectors.model import REDIRECT_HOSTS, Connector
from jobtoken.broker.ops.metrics import Metrics
from jobtoken.broker.secrets.envelope import Envelope, EnvelopeError
from jobtoken.broker.store import SqlStore, StoreError, sealed_record_id
from jobtoken.broker.upstream.authorization_flow import AuthorizationFailed, LoopbackAuthorization
from jobtoken.broker.upstream.grants import UpstreamGrants
from jobtoken.broker.upstream.oauth_client import (
    AuthorizationServerClient,
    AuthorizationServerError,
    AuthorizationServerTokens,
)
from jobtoken.cli.secret_input import read_secret_file

__all__ = ["register_connectors"]

_WHAT = {
    "static": "API key",
    "oauth2-refresh": "OAuth client secret",
    "oauth2-client-credentials": "OAuth client secret",
    "github-app": "GitHub App private key",
}


#: how long the one proving refresh of ``connect --refresh-token-file`` may take
_PROOF_SECONDS = 15.0


def register_connectors(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    connector = subparsers.add_parser("connector", help="manage connector credentials")
    commands = connector.add_subparsers(dest="connector_command", required=True)
    set_cmd = commands.add_parser("set", help="store a connector's credential", allow_abbrev=False)
    set_cmd.add_argument("name")
    _config_arg(set_cmd)
    set_cmd.add_argument(
        "--credential-file",
        required=True,
        metavar="PATH|-",
        help="file holding the credential (API key, client secret or app key), or - for stdin",
    )
    set_cmd.set_defaults(handler=_connector_set)
    list_cmd = commands.add_parser("list", help="each connector's credential and grant state")
    _config_arg(list_cmd)
    list_cmd.add_argument("--json", action="store_true", help="one JSON object per line")
    list_cmd.set_defaults(handler=_connector_list)

    connect = subparsers.add_parser(
        "connect", help="connect an OAuth connector to an account (authorization code + PKCE)"
    )
    connect.add_argument("name")
    _config_arg(connect)
    connect.add_argument(
        "--port", type=int, default=0, help="loopback callback port (default: any free one)"
    )
    connect.add_argument(
        "--redirect-host",
        choices=REDIRECT_HOSTS,
        default="",
        help="the redirect URI's host (default: what the connector's template says its "
        "provider accepts, else 127.0.0.1); the listener binds 127.0.0.1 either way",
    )
    connect.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the browser"
    )
    headless = connect.add_mutually_exclusive_group()
    headless.add_argument(
        "--refresh-token-file",
        metavar="PATH|-",
        help="headless: store this refresh token instead of opening a browser",
    )
    headless.add_argument(
        "--no-browser",
        action="store_true",
        help="headless: approve in a browser on any machine, then paste the redirect URL "
        "from its address bar on stdin",
    )
    connect.set_defaults(handler=_connect)


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the broker's TOML config")


def _fail(message: str) -> int:
    print(f"jobtoken broker: {message}", file=sys.stderr)
    return 1


def _connector_set(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        connector = _connector(config, args.name)
        if connector.credential_sealed_file is not None:
            raise ValueError(
                f"connector {args.name} names credential_sealed_file = "
                f'"{connector.credential_sealed_file}", which the broker uses instead of a '
                "stored credential: seal the new credential with `jobtoken seal` and "
                "replace that file, or remove the setting first"
            )
        raw = read_secret_file(args.credential_file)
        envelope = open_envelope(config)
        store = open_configured_store(config)
    except (ConfigError, OSError, ValueError) as exc:
        return _fail(str(exc))
    try:
        store.put_credential(
            args.name,
            envelope.encrypt(sealed_record_id("connector_credentials", args.name), raw),
            int(time.time()),
        )
    finally:
        store.close()
    what = _WHAT[connector.credential]
    print(
        f"stored the credential of connector {args.name} (its {what}, sealed under "
        f"{envelope.current.key_id})"
    )
    if connector.credential == "oauth2-refresh":
        print(f"next: jobtoken broker connect {args.name} --config {args.config}")
    return 0


def _connector_list(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        store = open_configured_store(config)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        grants = {row.connector: row for row in store.grants()}
        rows = []
        for name, connector in sorted(config.connectors.items()):
            grant = grants.get(name)
            rows.append(
                {
                    "name": name,
                    "kind": connector.kind,
                    "credential": connector.credential,
                    "credential_needed": connector.needs_credential,
                    "credential_set": _sealed_file_exists(connector)
                    or store.get_credential(name) is not None,
                    "credential_source": _source(connector),
                    "state": _state(connector, grant.state if grant else None),
                    "last_refresh": _when(grant.refreshed_at) if grant else "",
                    "access_expires": _when(grant.access_expires_at) if grant else "",
                    "needs_reauthorization": bool(grant and grant.state != "ready"),
                }
            )
    except StoreError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return 0
    columns = (
        "name", "kind", "credential", "credential_set", "state", "last_refresh", "access_expires"
    )  # fmt: skip
    for row in rows:  # a connector that needs no credential has none to set
        if not row["credential_set"] and not row["credential_needed"]:
            row["credential_set"] = "not needed"
    table = [columns] + [tuple(_cell(row[c]) for c in columns) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0


def _connect(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        connector = _connector(config, args.name)
        if connector.oauth is None:
            return _fail(f"connector {args.name} is not an OAuth connector (credential = ...)")
        refresh_token = (
            read_secret_file(args.refresh_token_file).decode() if args.refresh_token_file else ""
        )
        envelope = open_envelope(config)
        store = open_configured_store(config)
    except (ConfigError, OSError, ValueError) as exc:
        return _fail(str(exc))
    provider = AuthorizationServerClient()
    try:
        grants = _grants(store, envelope, provider)
        secret = _client_secret(store, envelope, connector, args.config)
        if refresh_token:
            tokens = _proven(connector, secret, refresh_token, provider)
            grants.connect(connector, tokens, "refresh_token_file")
            expires = tokens.expires_at
        else:
            expires = _browser_flow(connector, secret, grants, provider, args)
    except (AuthorizationFailed, AuthorizationServerError) as exc:
        return _fail(f"connector {args.name}: {exc}")
    except (StoreError, EnvelopeError, OSError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print(f"jobtoken broker: connect {args.name} interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports it
    finally:
        provider.close()
        store.close()
    print(
        f"connected connector {args.name}: its refresh token is stored sealed under "
        f"{envelope.current.key_id}; the current access token expires {_when(expires)}"
    )
    return 0


def _browser_flow(
    connector: Connector,
    secret: str,
    grants: UpstreamGrants,
    provider: AuthorizationServerClient,
    args: argparse.Namespace,
) -> int:
    assert connector.oauth is not None
    flow = LoopbackAuthorization(connector.oauth, port=args.port, host=args.redirect_host)
    where = "any machine" if args.no_browser else "this machine"
    print(f"Open this URL in a browser on {where} and approve the access:", flush=True)
    print(f"  {flow.authorization_url}", flush=True)
    if args.no_browser:
        print(
            f"The browser is then sent to {flow.redirect_uri}?…, which does not load "
            "there: copy the whole address from its address bar and paste it here "
            f"(within {args.timeout:g} s):",
            flush=True,
        )
        code = flow.code_from_pasted(_pasted_line(args.timeout))
    else:
        print(
            f"waiting up to {args.timeout:g} s for the redirect to {flow.redirect_uri} …",
            flush=True,
        )
        code = flow.wait(args.timeout)
    tokens = provider.authorization_code(
        connector.oauth, secret, code=code, redirect_uri=flow.redirect_uri, verifier=flow.verifier
    )
    if connector.credential == "oauth2-refresh" and not tokens.refresh_token:
        raise AuthorizationFailed(
            "the provider gave no refresh token; check the connector's scopes and "
            "authorize_params (some providers need offline access asked for)"
        )
    grants.connect(connector, tokens, "authorization_code")
    return tokens.expires_at


def _pasted_line(timeout: float) -> str:
    """One line from stdin, at most 8 KiB, within ``timeout`` seconds."""
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready:
        raise AuthorizationFailed(f"no redirect URL pasted within {timeout:g} s")
    line = sys.stdin.readline(8193)
    if not line.strip():
        raise AuthorizationFailed("no redirect URL pasted (stdin ended)")
    return line


def _proven(
    connector: Connector, secret: str, refresh_token: str, provider: AuthorizationServerClient
) -> AuthorizationServerTokens:
    """One refresh with the refresh token just given, before anything is stored: a token
    the provider refuses leaves the connector's grant as it was."""
    assert connector.oauth is not None
    try:
        tokens = provider.refresh(connector.oauth, secret, refresh_token, timeout=_PROOF_SECONDS)
    except AuthorizationServerError as exc:
        unchanged = "nothing was stored and the connector's grant is unchanged"
        if exc.kind == "invalid_grant":
            why = (
                "the provider refused the refresh token just given (invalid_grant: it is "
                "expired, revoked, already used or issued to another client); "
                f"{unchanged}; get a new refresh token, or run `jobtoken broker connect "
                f"{connector.name}` without --refresh-token-file for the browser flow"
            )
        elif exc.kind == "unavailable":
            why = f"its provider is not answering ({exc.text}); {unchanged}; try again later"
        else:
            why = (
                f"the provider refused to refresh the token just given ({exc.text}); "
                f"{unchanged}; check the connector's client_id, client secret and token_url"
            )
        raise AuthorizationFailed(why) from None
    # a provider that does not rotate refresh tokens answers without one: keep the given one
    return replace(tokens, refresh_token=tokens.refresh_token or refresh_token)


def _grants(
    store: SqlStore, envelope: Envelope, provider: AuthorizationServerClient
) -> UpstreamGrants:
    return UpstreamGrants(
        store=store, envelope=envelope, audit=AuditLog(store), metrics=Metrics(), provider=provider
    )


def _client_secret(store: SqlStore, envelope: Envelope, connector: Connector, config: Path) -> str:
    try:
        return ConnectorCredentials(store, envelope, AuditLog(store)).get(connector).decode()
    except CredentialUnusable as exc:
        if exc.reason != "credential_missing":
            raise AuthorizationFailed(exc.text) from None
        raise AuthorizationFailed(
            f"no client secret stored yet; run `jobtoken broker connector set {connector.name} "
            f"--config {config} --credential-file FILE` first"
        ) from None


def _connector(config: BrokerConfig, name: str) -> Connector:
    connector = config.connectors.get(name)
    if connector is None:
        raise ValueError(f"connector {name!r} is not in [connectors] of {config.path}")
    return connector


def _state(connector: Connector, grant_state: str | None) -> str:
    if connector.oauth is None:
        return "-"
    if grant_state is None:
        return "not connected" if connector.credential == "oauth2-refresh" else "not used yet"
    return grant_state.replace("_", " ")


def _sealed_file_exists(connector: Connector) -> bool:
    path = connector.credential_sealed_file
    return path is not None and path.is_file()


def _source(connector: Connector) -> str:
    """Where the connector's credential comes from: ``store`` or the sealed file."""
    path = connector.credential_sealed_file
    return "store" if path is None else f"sealed file {path}"


def _when(timestamp: int) -> str:
    if timestamp <= 0:
        return ""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) or "-"
