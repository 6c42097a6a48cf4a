"""``ANY /proxy/<connector>/<path>``: call a connector's API with a broker token.

The job presents its minted token (``Authorization: Bearer``); the broker checks, in
order: the connector is proxied; the token's signature, ``iss``, ``aud`` (= this
connector) and times; that the broker issued it (its row, matched by ``jti`` and
SHA-256) and has not revoked it; that the row's job binding equals the token's; the
path is plain (no ``.``/``..``/empty segments, no ``;`` (``..;`` path parameters that
Tomcat/Spring normalise away), no encoded ``/`` or ``\\``); a configured
route maps the method and path to a scope the token holds. Only then is the request
forwarded to ``base_url`` + path with the upstream credential injected
(``proxy_credentials.py``: a static key, an OAuth access token refreshed once for
everyone, or the job's own GitHub App token) and the broker token removed. An
OAuth connector's API answering 401 gets one forced single-flight refresh and one
retry, no more. Request and response bodies are capped, the upstream call has a
timeout and an overall deadline, redirects are not followed, and only an allowlist of
headers passes in either direction. The token check and the store reads run in the
thread pool (the store is synchronous); the upstream call itself runs on the event
loop, through the connector's pooled keep-alive ``httpx.AsyncClient``
(``proxy_upstream.UpstreamPool``, opened and closed with the app).

Public API: :func:`handle_proxy`.
"""

from __future__ import annotations

import hmac
import time
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobtoken.broker.assembly import Broker
from jobtoken.broker.connectors.model import Connector
from jobtoken.broker.http.blocking import blocking
from jobtoken.broker.http.oauth import OAuthError, read_body, safe_text
from jobtoken.broker.http.proxy_credentials import (
    CredentialUnavailable,
    UpstreamCredential,
    upstream_credential,
)
from jobtoken.broker.store import TokenRecord
from jobtoken.broker.tokens.exchange import token_sha256
from jobtoken.broker.tokens.signing import InvalidAccessToken
from jobtoken.broker.upstream.proxy_client import UpstreamError, UpstreamPool, UpstreamResponse

__all__ = ["handle_proxy"]

REQUEST_HEADERS = frozenset(
    {"accept", "content-type", "if-match", "if-none-match", "if-modified-since", "idempotency-key"}
)
RESPONSE_HEADERS = frozenset(
    {"content-type", "etag", "last-modified", "cache-control", "retry-after", "location"}
)
_MAX_QUERY_PARAMETERS = 32
_BINDING = ("repository_id", "run_id", "run_attempt", "check_run_id")
_MESSAGES = {
    "too_large": "the connector's response is too large",
    "too_slow": "the connector did not answer in time",
}


def _refuse(status: int, error: str, description: str) -> Response:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = f'Bearer error="{error}"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


async def handle_proxy(request: Request, broker: Broker, upstreams: UpstreamPool) -> Response:
    name = request.path_params["connector"]
    connector = broker.connectors.get(name)
    if connector is None or not connector.proxied:
        return _refuse(404, "not_found", "no proxied connector of that name")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return _refuse(401, "invalid_token", "send the broker token as Authorization: Bearer")
    try:  # one thread hop for both: the keys may be refreshed from the store, then its row
        claims, record = await blocking(_verify_and_find, broker, token, name)
    except InvalidAccessToken as exc:
        broker.metrics.count("jobtoken_proxy_requests_total", outcome="invalid_token")
        return _refuse(401, "invalid_token", str(exc))
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
    try:
        credential = await blocking(upstream_credential, broker, connector, record.token_id)
        upstream = await _send(request, upstreams, connector, credential, segments, query, body)
        if upstream.status == 401 and credential.generation:
            # the provider no longer takes this access token: one forced refresh (single
            # flight: a token newer than this one, whoever gets it), then one retry
            credential = await blocking(
                _newer_credential, broker, connector, record.token_id, credential.generation
            )
            upstream = await _send(request, upstreams, connector, credential, segments, query, body)
    except CredentialUnavailable as exc:
        broker.metrics.count("jobtoken_proxy_requests_total", outcome="credential_unavailable")
        response = _refuse(exc.status, exc.error, exc.text)
        if exc.retry_after:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except UpstreamError as exc:
        broker.metrics.count("jobtoken_proxy_requests_total", outcome="upstream_error")
        return _refuse(502, "bad_gateway", _MESSAGES.get(exc.kind, f"the connector {exc.detail}"))
    broker.metrics.count("jobtoken_proxy_requests_total", outcome="forwarded")
    return Response(upstream.body, status_code=upstream.status, headers=_kept_headers(upstream))


def _newer_credential(
    broker: Broker, connector: Connector, token_id: str, generation: int
) -> UpstreamCredential:
    return upstream_credential(broker, connector, token_id, newer_than=generation)


async def _send(
    request: Request,
    upstreams: UpstreamPool,
    connector: Connector,
    credential: UpstreamCredential,
    segments: tuple[str, ...],
    query: str,
    body: bytes,
) -> UpstreamResponse:
    """One call to the connector's API with ``credential`` injected."""
    header, value = connector.credential_header(credential.value)
    headers = {k: v for k, v in request.headers.items() if k.lower() in REQUEST_HEADERS}
    headers.update(connector.headers)
    headers = {k: v for k, v in headers.items() if k.lower() != header.lower()}
    headers[header] = value
    try:  # Starlette decoded the request's headers as latin-1: this gives back their bytes
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    except UnicodeEncodeError:  # only the credential can be outside latin-1
        raise CredentialUnavailable(
            503, "temporarily_unavailable", "connector credential unavailable"
        ) from None
    url = (credential.base_url or connector.base_url) + "/" + "/".join(segments)
    if query:
        url += "?" + query
    return await upstreams.send(connector.name, request.method, url, raw_headers, body)


def _verify_and_find(
    broker: Broker, token: str, connector: str
) -> tuple[dict[str, Any], TokenRecord | None]:
    """The token's claims (raises InvalidAccessToken first), then its row in the store."""
    claims = broker.signer.verify(token, connector=connector)
    return claims, broker.store.find_token(claims["jti"])


def _kept_headers(upstream: UpstreamResponse) -> dict[str, str]:
    """The allowlisted response headers, a repeated one joined with ", " (as requests did)."""
    kept: dict[str, str] = {}
    for raw_name, raw_value in upstream.headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name in RESPONSE_HEADERS:
            kept[name] = f"{kept[name]}, {value}" if name in kept else value
    return kept


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
