"""``ANY /proxy/<connector>/<path>``: call a connector's API with a broker token.

The job presents its minted token (``Authorization: Bearer``); the broker checks, in
order: the connector is proxied; the token's signature, ``iss``, ``aud`` (= this
connector) and times; that the broker issued it (its row, matched by ``jti`` and
SHA-256) and has not revoked it; that the row's job binding equals the token's; the
path is plain (no ``.``/``..``/empty segments, no ``;`` (``..;`` path parameters that
Tomcat/Spring normalise away), no encoded ``/`` or ``\\``); a configured
route maps the method and path to a scope the token holds. Only then is the request
forwarded to ``base_url`` + path with the upstream credential injected and the broker
token removed. Request and response bodies are capped, the upstream call has a
timeout and an overall deadline, redirects are not followed, and only an allowlist of
headers passes in either direction. Upstream calls share one pool of keep-alive
connections (``bounded_http.pooled_session``).

Public API: :func:`handle_proxy`.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobtoken.broker.assembly import Broker
from jobtoken.broker.bounded_http import BoundedHttpError, pooled_session, request_bounded
from jobtoken.broker.config import ProxyConfig
from jobtoken.broker.mint import InvalidAccessToken
from jobtoken.broker.oauth import OAuthError, read_body, safe_text
from jobtoken.broker.sealing import SealingError
from jobtoken.broker.token_exchange import token_sha256

__all__ = ["handle_proxy"]

REQUEST_HEADERS = frozenset(
    {"accept", "content-type", "if-match", "if-none-match", "if-modified-since", "idempotency-key"}
)
RESPONSE_HEADERS = frozenset(
    {"content-type", "etag", "last-modified", "cache-control", "retry-after", "location"}
)
_MAX_QUERY_PARAMETERS = 32
_BINDING = ("repository_id", "run_id", "run_attempt", "check_run_id")
#: one pool of keep-alive connections to the connectors' APIs, shared by every request
_UPSTREAM_SESSION = pooled_session()


@dataclass(frozen=True)
class _Upstream:
    status: int
    headers: dict[str, str]
    body: bytes


def _refuse(status: int, error: str, description: str) -> Response:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = f'Bearer error="{error}"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


async def handle_proxy(request: Request, broker: Broker) -> Response:
    name = request.path_params["connector"]
    connector = broker.connectors.get(name)
    if connector is None or not connector.proxied:
        return _refuse(404, "not_found", "no proxied connector of that name")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return _refuse(401, "invalid_token", "send the broker token as Authorization: Bearer")
    try:
        claims = await run_in_threadpool(broker.minter.verify, token, connector=name)
    except InvalidAccessToken as exc:
        broker.metrics.count("jobtoken_proxy_requests_total", outcome="invalid_token")
        return _refuse(401, "invalid_token", str(exc))
    record = await run_in_threadpool(broker.store.find_token, claims["jti"])
    now = int(time.time())
    if (
        record is None
        or not hmac.compare_digest(record.token_sha256.encode(), token_sha256(token).encode())
        or not record.active(now)
        or any(str(claims.get(k, "")) != getattr(record, k) for k in _BINDING)
    ):
        broker.metrics.count("jobtoken_proxy_requests_total", outcome="invalid_token")
        return _refuse(401, "invalid_token", "the token is revoked, expired or not issued here")
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    prefix = f"/proxy/{name}".encode()
    segments = _segments(raw_path[len(prefix) :].decode("ascii", "replace"))
    if segments is None:
        return _refuse(
            400, "invalid_request", "the path has empty, dot, `;` or encoded-slash segments"
        )
    decoded = tuple(unquote(s) for s in segments)
    route = connector.route_for(request.method, decoded)
    if route is None:
        broker.metrics.count("jobtoken_proxy_requests_total", outcome="no_route")
        return _refuse(403, "insufficient_scope", "no route of this connector allows this call")
    needed = route.scope
    if needed not in str(claims["scope"]).split():
        broker.metrics.count("jobtoken_proxy_requests_total", outcome="insufficient_scope")
        return _refuse(403, "insufficient_scope", f"this call needs scope {needed}")
    query, refused = _allowed_query(request.url.query, route.query)
    if refused is not None:
        broker.metrics.count("jobtoken_proxy_requests_total", outcome="query_refused")
        return _refuse(
            400, "invalid_request", f"query parameter {refused} is not allowed on this route"
        )
    try:
        body = await read_body(request, broker.config.proxy.max_request_bytes)
    except OAuthError as exc:
        return _refuse(exc.status, "invalid_request", exc.description)
    sealed = await run_in_threadpool(broker.store.get_credential, name)
    try:
        credential = broker.sealer.open(f"connector:{name}", sealed or b"").decode("utf-8")
    except (SealingError, UnicodeDecodeError):
        return _refuse(503, "temporarily_unavailable", "connector credential unavailable")
    header, value = connector.credential_header(credential)
    headers = {k: v for k, v in request.headers.items() if k.lower() in REQUEST_HEADERS}
    headers[header] = value
    url = connector.base_url + "/" + "/".join(segments)
    if query:
        url += "?" + query
    try:
        upstream = await run_in_threadpool(
            _forward, request.method, url, headers, body, broker.config.proxy
        )
    except _UpstreamError as exc:
        broker.metrics.count("jobtoken_proxy_requests_total", outcome="upstream_error")
        return _refuse(502, "bad_gateway", str(exc))
    broker.metrics.count("jobtoken_proxy_requests_total", outcome="forwarded")
    return Response(upstream.body, status_code=upstream.status, headers=upstream.headers)


def _allowed_query(raw: str, allowed: tuple[str, ...]) -> tuple[str, str | None]:
    """The query string to forward, and the first parameter name refused (None: none).

    Only names the route lists pass, each as it was sent (still percent-encoded);
    a parameter the route does not list refuses the whole request rather than
    being dropped, so the upstream never sees a call other than the one asked for.
    """
    if not raw:
        return "", None
    kept: list[str] = []
    for pair in raw.split("&")[: _MAX_QUERY_PARAMETERS + 1]:
        name = unquote(pair.partition("=")[0])
        if name not in allowed or len(kept) >= _MAX_QUERY_PARAMETERS:
            return "", safe_text(name, 40) or "(empty)"
        kept.append(pair)
    return "&".join(kept), None


def _segments(raw: str) -> tuple[str, ...] | None:
    """Raw (still percent-encoded) path segments, or None when any is unsafe."""
    parts = tuple(raw.lstrip("/").split("/")) if raw.strip("/") else ()
    for part in parts:
        decoded = unquote(part)
        if not part or decoded in (".", "..") or any(c in decoded for c in "/\\;"):
            return None
        if any(ord(c) < 0x20 or c == "\x7f" for c in decoded):
            return None
    return parts


class _UpstreamError(Exception):
    pass


def _forward(
    method: str, url: str, headers: dict[str, str], body: bytes, config: ProxyConfig
) -> _Upstream:
    try:
        response = request_bounded(
            _UPSTREAM_SESSION,
            method,
            url,
            headers=headers,
            body=body,
            max_bytes=config.max_response_bytes,
            connect_timeout=min(10, config.timeout_seconds),
            read_timeout=config.timeout_seconds,
            total_seconds=config.timeout_seconds,
        )
    except BoundedHttpError as exc:
        message = {
            "too_large": "the connector's response is too large",
            "too_slow": "the connector did not answer in time",
        }.get(exc.kind, f"the connector {exc.detail}")
        raise _UpstreamError(message) from None
    kept = {k: v for k, v in response.headers.items() if k.lower() in RESPONSE_HEADERS}
    return _Upstream(response.status, kept, response.body)
