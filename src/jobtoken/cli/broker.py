"""``jobtoken broker …``: run the broker and administer its store.

- ``init DIR`` and ``check --config FILE`` — set-up (``broker_setup.py``);
- ``serve --config FILE [--workers N] [--http …] [--loop …] [--dev]`` — uvicorn on
  ``[server] host/port`` (httptools and uvloop, from the ``broker`` extra, unless
  ``--http h11`` / ``--loop asyncio``); it refuses a ``public_url`` still an example's
  unless ``--dev``, and a ``[server] port`` it cannot bind (before any start-up
  work), and logs the findings of ``check`` at start;
- ``connector set|list`` and ``connect`` — a connector's credential and OAuth grant
  (``broker_connectors.py``);
- ``rotate-master-key --config FILE`` — re-wrap every sealed record under the current
  master key (keep the old one in ``previous_master_key_*`` until this has run);
- ``rotate-signing-key --config FILE`` — new current signing key; the old one stays
  in the JWKS as "previous";
- ``migrate --config FILE`` — bring the store's schema to this release's version
  (``serve`` creates an empty store, and refuses one that is behind or ahead);
- ``audit tail|list|verify|export|archive`` — read, check, export and archive the
  audit trail (``broker_audit.py``).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import tempfile
from pathlib import Path

from jobtoken.broker.assembly import open_configured_store, open_envelope
from jobtoken.broker.config import BrokerConfig, ConfigError, load_config, looks_unconfigured
from jobtoken.broker.secrets.envelope import Envelope, EnvelopeError
from jobtoken.broker.store import LATEST_VERSION, SqlStore
from jobtoken.broker.tokens.signing import SigningKeys
from jobtoken.cli.broker_audit import register_audit
from jobtoken.cli.broker_connectors import register_connectors
from jobtoken.cli.broker_setup import register_setup

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    register_setup(subparsers)
    register_connectors(subparsers)
    serve = subparsers.add_parser("serve", help="run the broker (uvicorn)")
    _config_arg(serve)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--http",
        choices=["auto", "httptools", "h11"],
        default="auto",
        help="HTTP parser (auto: httptools when installed, the 'fast' extra)",
    )
    serve.add_argument(
        "--loop",
        choices=["auto", "uvloop", "asyncio"],
        default="auto",
        help="event loop (auto: uvloop when installed, the 'fast' extra)",
    )
    serve.add_argument(
        "--dev",
        action="store_true",
        help="serve even with public_url still an example's (a trial on this machine)",
    )
    serve.set_defaults(handler=_serve)

    master = subparsers.add_parser("rotate-master-key", help="re-wrap records under the new key")
    _config_arg(master)
    master.set_defaults(handler=_rotate_master_key)

    signing = subparsers.add_parser("rotate-signing-key", help="make a new current signing key")
    _config_arg(signing)
    signing.set_defaults(handler=_rotate_signing_key)

    migrate = subparsers.add_parser("migrate", help="upgrade the store's schema")
    _config_arg(migrate)
    migrate.set_defaults(handler=_migrate)
    register_audit(subparsers)


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the broker's TOML config")


def _fail(message: str) -> int:
    print(f"jobtoken broker: {message}", file=sys.stderr)
    return 1


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from jobtoken.broker.assembly import Broker
    from jobtoken.broker.http.app import CONFIG_ENV, create_app
    from jobtoken.broker.ops.logs import configure_logging, log_event
    from jobtoken.broker.ops.metrics import SHARE_ENV
    from jobtoken.broker.setup.preflight import preflight

    if args.workers < 1 or args.workers > 64:
        return _fail("--workers must be between 1 and 64")
    try:
        config = load_config(args.config)
        _require_configured_url(config, dev=args.dev)
        _require_free_port(config)
        configure_logging(config.server.log_level)
        # Built once here: checks every secret and creates the schema and first key
        # before any worker starts (workers would otherwise race to create them).
        broker = Broker.from_config(config)
    except ConfigError as exc:
        return _fail(str(exc))
    for finding in preflight(config):
        log_event(
            f"check: {finding.text}", logging.ERROR if finding.level == "error" else logging.WARNING
        )
    log_event(
        "broker starting",
        host=config.server.host,
        port=config.server.port,
        workers=args.workers,
        store=config.store.kind,
        public_url=config.server.public_url,
    )
    common = {
        "host": config.server.host,
        "port": config.server.port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        "timeout_keep_alive": 5,
        "http": args.http,
        "loop": args.loop,
    }
    if args.workers == 1:
        uvicorn.run(create_app(broker), **common)
    else:
        broker.close()
        os.environ[CONFIG_ENV] = str(args.config.resolve())
        with tempfile.TemporaryDirectory(prefix="jobtoken-metrics-") as shared:
            os.environ[SHARE_ENV] = shared  # the workers add up their metrics here
            uvicorn.run(
                "jobtoken.broker.http.app:create_app_from_env",
                factory=True,
                workers=args.workers,
                **common,
            )
    return 0


def _require_configured_url(config: BrokerConfig, *, dev: bool) -> None:
    """Refuse a ``public_url`` still an example's: jobs would get an audience error."""
    if looks_unconfigured(config.server.public_url) and not dev:
        raise ConfigError(
            f"[server] public_url in {config.path} is still the example's "
            f"{config.server.public_url}: set it to the URL jobs reach this broker at (it "
            "is the ID tokens' audience), or pass --dev for a trial on this machine"
        )


def _require_free_port(config: BrokerConfig) -> None:
    """Refuse to start when ``[server] host/port`` cannot be bound, before any start-up
    work (uvicorn would say so only after "Application startup complete")."""
    host, port = config.server.host, config.server.port
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as exc:
        raise ConfigError(
            f"[server] port {port} on {host} cannot be bound ({exc.strerror or exc}): is "
            f"another broker already serving there? Stop it, or set another [server] port "
            f"in {config.path}"
        ) from None


def _rotate_master_key(args: argparse.Namespace) -> int:
    try:
        _, envelope, store = _config_envelope_and_store(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    moved = kept = 0
    try:
        for record in store.sealed_records():
            if envelope.key_id_of(record.sealed) == envelope.current.key_id:
                kept += 1
                continue
            rewrapped = envelope.rewrap(record.record_id, record.sealed)
            if not store.replace_sealed(record, rewrapped):
                return _fail(f"record {record.key} changed during rotation; run the command again")
            moved += 1
    except EnvelopeError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    print(
        f"re-wrapped {moved} record(s) under {envelope.current.key_id}; {kept} already were. "
        "The previous master keys can now be removed from the config."
    )
    return 0


def _rotate_signing_key(args: argparse.Namespace) -> int:
    try:
        config, envelope, store = _config_envelope_and_store(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        kid = SigningKeys(store, envelope, alg=config.keys.signing_algorithm).rotate()
    finally:
        store.close()
    print(
        f"new signing key {kid} is current; running brokers pick it up within "
        f"{config.keys.signing_key_refresh_seconds} s"
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    try:
        store = open_configured_store(load_config(args.config), migrate=True)
    except ConfigError as exc:
        return _fail(str(exc))
    store.close()
    for migration in store.applied:
        print(f"applied migration {migration.version}: {migration.summary}")
    state = "now at" if store.applied else "already at"
    print(f"store schema {state} version {LATEST_VERSION}")
    return 0


def _config_envelope_and_store(config_path: Path) -> tuple[BrokerConfig, Envelope, SqlStore]:
    """The config at `config_path`, its envelope (master keys) and its open store."""
    config = load_config(config_path)
    return config, open_envelope(config), open_configured_store(config)
