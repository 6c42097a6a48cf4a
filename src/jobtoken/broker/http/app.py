"""The broker's HTTP API (Starlette): the routes and how each maps to the broker.

Routes (standards first, so that any OAuth client can talk to the broker):

- ``POST /token`` — RFC 8693 token exchange (``tokens/exchange.py``);
- ``POST /revoke`` — RFC 7009, by possession or for a job proved by its ID token
  (``http/registry_routes.py``);
- ``POST /introspect`` — RFC 7662, HTTP Basic client auth; inactive is ``{"active": false}``;
- ``GET /.well-known/oauth-authorization-server`` — RFC 8414 metadata;
- ``GET /.well-known/jwks.json`` — the current and previous signing keys;
- ``POST /webhooks/github`` — ``workflow_job`` completed → revoke (``http/webhook.py``);
- ``ANY /proxy/<connector>/<path>`` — connector calls with a broker token (``http/proxy.py``);
- ``GET /healthz`` (readiness: the store answers), ``GET /livez`` (liveness),
  ``GET /metrics`` (Prometheus text);
- ``GET /openapi.json`` — this API as an OpenAPI 3.1 document (``openapi/document.py``).

The app's lifespan runs the expiry purge and opens the proxy's upstream clients (one
pooled ``httpx.AsyncClient`` per proxied connector) at start, and closes them at stop.

Errors follow RFC 6749 §5.2 (``{"error", "error_description"}``, ``Cache-Control:
no-store``). While the store cannot be reached or commit, a request that needs it gets
503 ``temporarily_unavailable`` with ``Retry-After`` (``store_outage.py``). An
unexpected failure is a 500 ``server_error`` that says nothing more.

Public API: :func:`create_app`, :func:`create_app_from_env` (uvicorn factory used by
``jobtoken broker serve``; reads the config path from ``JOBTOKEN_BROKER_CONFIG``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from jobtoken.broker.assembly import Broker
from jobtoken.broker.audit.chain import AuditEntry
from jobtoken.broker.config import load_config
from jobtoken.broker.errors import BrokerError
from jobtoken.broker.http.blocking import blocking
from jobtoken.broker.http.grant_waits import GrantWaits
from jobtoken.broker.http.oauth import error_response, oauth_json, read_form
from jobtoken.broker.http.openapi.document import serve_openapi
from jobtoken.broker.http.proxy import handle_proxy
from jobtoken.broker.http.registry_routes import introspect, revoke
from jobtoken.broker.http.request_log import RequestLog, request_id
from jobtoken.broker.http.store_outage import RETRY_AFTER_SECONDS, StoreOutage
from jobtoken.broker.http.webhook import handle_github_webhook
from jobtoken.broker.ops.logs import configure_logging
from jobtoken.broker.ops.metrics import SHARE_ENV
from jobtoken.broker.ops.rate_limits import RateLimiter
from jobtoken.broker.store import GRANT_NEEDS_REAUTHORIZATION, StoreError
from jobtoken.broker.tokens.exchange import TokenRequest
from jobtoken.broker.tokens.expiry_purge import ExpiryPurge
from jobtoken.broker.upstream.proxy_client import UpstreamPool
from jobtoken.wire.grammar import parse_ascii_int
from jobtoken.wire.oauth_terms import (
    ACCESS_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    SUBJECT_TOKEN_TYPES,
    TOKEN_EXCHANGE_GRANT,
)

__all__ = ["CONFIG_ENV", "create_app", "create_app_from_env"]

CONFIG_ENV = "JOBTOKEN_BROKER_CONFIG"
_TTL_DIGITS = 6
PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]

Handler = Callable[[Request, Broker], Awaitable[Response]]


def create_app(broker: Broker) -> Starlette:
    outage = StoreOutage()
    limits = broker.config.limits
    client_limit = RateLimiter(limits.client_rate, limits.client_burst)

    def bind(handler: Handler, limited: bool = True) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            client = request.client.host if request.client else ""
            refused = (
                client_limit.refusal(client, "client", "too many requests from this address")
                if limited
                else None
            )
            try:
                if refused is not None:
                    broker.metrics.count("jobtoken_rate_limited_total", limit="client")
                    if refused.report:  # the first of its window; the others are counted only
                        rid = request_id(request)
                        entry = AuditEntry(
                            "denied", "rate_limited", client_address=client, request_id=rid
                        )
                        await blocking(broker.audit.record, entry)
                    raise refused
                response = await handler(request, broker)
            except StoreError as exc:  # a failure of the broker, not a refusal (errors.py)
                broker.metrics.count("jobtoken_store_unavailable_total")
                return error_response(outage.refuse(exc))
            except BrokerError as exc:
                return error_response(exc)
            if outage.active and response.status_code < 500:
                outage.recovered()
            return response

        return endpoint

    upstreams = UpstreamPool(broker.connectors, broker.config.proxy)
    waits = GrantWaits(broker.grants)

    async def proxy(request: Request, broker: Broker) -> Response:
        return await handle_proxy(request, broker, upstreams, waits)

    routes = [
        Route("/token", bind(token), methods=["POST"]),
        Route("/revoke", bind(revoke), methods=["POST"]),
        Route("/introspect", bind(introspect), methods=["POST"]),
        Route("/.well-known/oauth-authorization-server", bind(metadata), methods=["GET"]),
        Route("/.well-known/jwks.json", bind(jwks), methods=["GET"]),
        Route("/webhooks/github", bind(handle_github_webhook), methods=["POST"]),
        Route("/proxy/{connector}/{path:path}", bind(proxy), methods=PROXY_METHODS),
        Route("/healthz", bind(healthz, limited=False), methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/metrics", bind(metrics, limited=False), methods=["GET"]),
        Route("/openapi.json", bind(serve_openapi), methods=["GET"]),
    ]
    purge = ExpiryPurge(
        broker.store,
        retention=broker.config.tokens.retention_seconds,
        after_round=broker.app_tokens.sweep,
    )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        upstreams.start()
        task = asyncio.create_task(purge.run_forever())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            await upstreams.aclose()
            waits.close()
            broker.metrics.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.upstreams = upstreams  # the proxy's upstream clients, for tests and probes
    app.add_middleware(RequestLog)
    return app


def create_app_from_env() -> Starlette:
    config = load_config(Path(os.environ[CONFIG_ENV]))
    configure_logging(config.server.log_level)
    broker = Broker.from_config(config)
    shared = os.environ.get(SHARE_ENV)
    if shared:  # `serve --workers N`: every worker's series in every scrape
        broker.metrics.share(Path(shared))
    return create_app(broker)


async def token(request: Request, broker: Broker) -> Response:
    form: dict[str, str] = {}
    client = request.client.host if request.client else ""
    user_agent = request.headers.get("user-agent", "")
    try:
        form = await read_form(request, broker.config.server.max_body_bytes)
        exchange = replace(_token_request(form, client, user_agent), request_id=request_id(request))
    except BrokerError as exc:  # refused before the exchange proper: audited all the same
        refused = TokenRequest(
            subject_token="",
            connector=form.get("resource") or form.get("audience") or "",
            scope=form.get("scope", ""),
            client_address=client,
            user_agent=user_agent,
            request_id=request_id(request),
        )
        await blocking(broker.exchange.refuse, refused, exc)
        raise
    issued = await blocking(broker.exchange.exchange, exchange)
    return oauth_json(issued.response())


def _token_request(form: dict[str, str], client: str, user_agent: str) -> TokenRequest:
    if form.get("grant_type") != TOKEN_EXCHANGE_GRANT:
        raise BrokerError(
            "unsupported_grant_type",
            f"grant_type must be {TOKEN_EXCHANGE_GRANT}",
            reason="unsupported_grant_type",
        )
    if form.get("subject_token_type") not in SUBJECT_TOKEN_TYPES:
        raise BrokerError(
            "invalid_request",
            "subject_token_type must be the id_token or jwt token type",
            reason="unsupported_subject_token_type",
        )
    if form.get("requested_token_type", JWT_TOKEN_TYPE) not in (JWT_TOKEN_TYPE, ACCESS_TOKEN_TYPE):
        raise BrokerError(
            "invalid_request",
            "requested_token_type must be jwt or access_token",
            reason="unsupported_requested_token_type",
        )
    if "actor_token" in form:
        raise BrokerError(
            "invalid_request", "delegation (actor_token) is not supported", reason="actor_token"
        )
    subject_token = form.get("subject_token", "")
    if not subject_token:
        raise BrokerError(
            "invalid_request",
            "subject_token is missing (the job's ID token)",
            reason="missing_subject_token",
        )
    resource, audience = form.get("resource"), form.get("audience")
    if resource and audience and resource != audience:
        raise BrokerError(
            "invalid_target",
            "resource and audience name different connectors",
            reason="conflicting_target",
        )
    connector = resource or audience or ""
    if not connector:
        raise BrokerError(
            "invalid_target",
            "name the connector in the resource parameter",
            reason="missing_target",
        )
    ttl_text = form.get("ttl")
    ttl = None if ttl_text is None else parse_ascii_int(ttl_text, _TTL_DIGITS)
    if ttl_text is not None and ttl is None:
        raise BrokerError(
            "invalid_request",
            f"ttl must be a number of seconds (ASCII digits, at most {_TTL_DIGITS})",
            reason="malformed_ttl",
        )
    return TokenRequest(
        subject_token=subject_token,
        connector=connector,
        scope=form.get("scope", ""),
        ttl=ttl,
        client_address=client,
        user_agent=user_agent,
    )


async def metadata(request: Request, broker: Broker) -> Response:
    base = broker.config.server.public_url
    scopes = sorted({s for c in broker.connectors.values() for s in c.scopes})
    body = {
        "issuer": base,
        "token_endpoint": f"{base}/token",
        "revocation_endpoint": f"{base}/revoke",
        "introspection_endpoint": f"{base}/introspect",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": [TOKEN_EXCHANGE_GRANT],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "scopes_supported": scopes,
    }
    return JSONResponse(body)


async def jwks(request: Request, broker: Broker) -> Response:
    keys = await blocking(broker.keys.jwks)
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})


async def healthz(request: Request, broker: Broker) -> Response:
    """Readiness: 200 while the store answers, else 503 (take the broker out of rotation)."""
    try:
        await blocking(broker.store.audit_head)
    except StoreError:
        return JSONResponse(
            {"status": "unavailable", "store": "unavailable"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return JSONResponse({"status": "ok", "store": "ok"})


async def livez(request: Request) -> Response:
    """Liveness: the process answers requests (do not restart it for a store outage)."""
    return JSONResponse({"status": "alive"})


async def metrics(request: Request, broker: Broker) -> Response:
    if not broker.metrics_allowed(request.headers.get("authorization", "")):
        return PlainTextResponse(
            "metrics need Authorization: Bearer <server.metrics_token>\n",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="jobtoken-metrics"'},
        )
    try:
        current = await blocking(_grant_gauges, broker)
    except StoreError:
        current = []  # the grants' state is unknown: no series rather than a guess
    return PlainTextResponse(broker.metrics.render(current), media_type="text/plain; version=0.0.4")


def _grant_gauges(broker: Broker) -> list[tuple[str, dict[str, str], int]]:
    """Each OAuth connector's grant state as the store has it now, the same on every
    worker and broker: 1 while it needs re-authorization."""
    dead = {r.connector for r in broker.store.grants() if r.state == GRANT_NEEDS_REAUTHORIZATION}
    return [
        ("jobtoken_connector_needs_reauthorization", {"connector": name}, int(name in dead))
        for name, connector in sorted(broker.connectors.items())
        if connector.oauth is not None
    ]
