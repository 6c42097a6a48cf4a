"""``ANY /proxy/<connector>/<path>``: call a connector's API with a broker token.

The job presents its minted token (``Authorization: Bearer``); the broker checks, in
order: the connector is proxied; the token's signature, ``iss``, ``aud`` (= this
connector) and times; that the broker issued it (its row, matched by ``jti`` and
SHA-256) and has not revoked it; that the row's job binding equals the token's; the
path is plain (no ``.``/``..``/empty segments, no ``;`` (``..;`` path parameters that
Tomcat/Spring normalise away), no encoded ``/`` or ``\\``); a configured
route maps the method and path to a scope the token holds. Only then is the request
forwarded to ``base_url`` + path with the upstream credential injected
(``http/proxy_credentials.py``: a static key, an OAuth access token refreshed once for
everyone, or the job's own GitHub App token) and the broker token removed. An
OAuth connector's API answering 401 gets one forced single-flight refresh and one
retry, no more. Request and response bodies are capped, the upstream call has a
timeout and an overall deadline, redirects are not followed, and only an allowlist of
headers passes in either direction. The token check and the store reads run in the
thread pool (the store is synchronous); the upstream call itself runs on the event
loop, through the connector's pooled keep-alive ``httpx.AsyncClient``
(``upstream/proxy_client.py``'s ``UpstreamPool``, opened and closed with the app).

Public API: :func:`handle_proxy`.
"""

from __future__ import annotations

import hmac
import time
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from jobtoken.broker.assembly import Broker
from jobtoken.broker.connectors.model import Connector
from jobtoken.broker.errors import BrokerError
from jobtoken.broker.http.blocking import blocking
from jobtoken.broker.http.grant_waits import GrantWaits
from jobtoken.broker.http.oauth import error_response, read_body, safe_text
from jobtoken.broker.http.proxy_credentials import (
    UpstreamCredential,
    proxy_credential,
    unavailable,
)
from jobtoken.broker.store import StoreError, TokenRecord
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


def _refusal(broker: Broker, exc: BrokerError, outcome: str) -> Response:
    """The proxy's answer to a refusal, counted by ``outcome``: the same body and headers
    as every other endpoint's (RFC 6750 §3: a 401 says ``WWW-Authenticate: Bearer``)."""
    broker.metrics.count("jobtoken_proxy_requests_total", outcome=outcome)
    response = error_response(exc)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer error="{exc.error}"'
    return response


def _refused(status: int, error: str, description: str, outcome: str) -> BrokerError:
    return BrokerError(error, description, status=status, reason=outcome)


async def handle_proxy(
    request: Request, broker: Broker, upstreams: UpstreamPool, waits: GrantWaits
) -> Response:
    try:
        claims, record, connector = await _admitted(request, broker)
        segments, query = _route(request, connector, claims)
        body = await read_body(request, broker.config.proxy.max_request_bytes)
    except StoreError:
        raise  # the edge answers the outage
    except BrokerError as exc:
        return _refusal(broker, exc, exc.reason)
    try:
        credential = await proxy_credential(broker, waits, connector, record.token_id)
        upstream = await _send(request, upstreams, connector, credential, segments, query, body)
        if upstream.status == 401 and credential.generation:
            # the provider no longer takes this access token: one forced refresh (single
            # flight: a token newer than this one, whoever gets it), then one retry
            credential = await proxy_credential(
                broker, waits, connector, record.token_id, newer_than=credential.generation
            )
            upstream = await _send(request, upstreams, connector, credential, segments, query, body)
    except StoreError:
        raise
    except UpstreamError as exc:
        return _refusal(broker, exc, "upstream_error")
    except BrokerError as exc:
        return _refusal(broker, exc, "credential_unavailable")
    broker.metrics.count("jobtoken_proxy_requests_total", outcome="forwarded")
    return Response(upstream.body, status_code=upstream.status, headers=_kept_headers(upstream))


async def _admitted(
    request: Request, broker: Broker
) -> tuple[dict[str, Any], TokenRecord, Connector]:
    """The proxied connector, and the presented token's claims and row: issued here, not
    revoked, unexpired, bound to the job its claims name."""
    name = request.path_params["connector"]
    connector = broker.connectors.get(name)
    if connector is None or not connector.proxied:
        raise _refused(404, "not_found", "no proxied connector of that name", "not_proxied")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _refused(
            401, "invalid_token", "send the broker token as Authorization: Bearer", "no_token"
        )
    try:  # one thread hop for both: the keys may be refreshed from the store, then its row
        claims, record = await blocking(_verify_and_find, broker, token, name)
    except InvalidAccessToken as exc:
        raise _refused(401, "invalid_token", exc.description, "invalid_token") from None
    now = int(time.time())
    if (
        record is None
        or not hmac.compare_digest(record.token_sha256.encode(), token_sha256(token).encode())
        or not record.active(now)
        or any(str(claims.get(k, "")) != getattr(record, k) for k in _BINDING)
    ):
        raise _refused(
            401,
            "invalid_token",
            "the token is revoked, expired or not issued here",
            "invalid_token",
        )
    return claims, record, connector


def _route(
    request: Request, connector: Connector, claims: dict[str, Any]
) -> tuple[tuple[str, ...], str]:
    """The raw path segments and the query to forward, once the path
    is plain, a route maps it to a scope the token holds and the query is the route's."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    prefix = f"/proxy/{connector.name}".encode()
    segments = _segments(raw_path[len(prefix) :].decode("ascii", "replace"))
    if segments is None:
        raise _refused(
            400,
            "invalid_request",
            "the path has empty, dot, `;` or encoded-slash segments",
            "malformed_path",
        )
    route = connector.route_for(request.method, tuple(unquote(s) for s in segments))
    if route is None:
        raise _refused(
            403, "insufficient_scope", "no route of this connector allows this call", "no_route"
        )
    if route.scope not in str(claims["scope"]).split():
        raise _refused(
            403, "insufficient_scope", f"this call needs scope {route.scope}", "insufficient_scope"
        )
    query, refused = _allowed_query(request.url.query, route.query)
    if refused is not None:
        raise _refused(
            400,
            "invalid_request",
            f"query parameter {refused} is not allowed on this route",
            "query_refused",
        )
    return segments, query


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
        raise unavailable("connector credential unavailable") from None
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
