"""The operations of the broker's OpenAPI document (``document.py``), path by path,
written by hand from what each handler reads and answers: ``http/app.py`` (token, revoke,
introspect, metadata, JWKS, probes, metrics), ``http/proxy.py`` and ``http/webhook.py``. The
shared bodies, headers, patterns and error responses are in ``components.py``.

Public API: :data:`PATHS`, :data:`PROXY_RESPONSES`.
"""

from __future__ import annotations

from typing import Any

from jobtoken.broker.http.openapi.components import (
    CONNECTOR_NAME_PATTERN,
    SUBJECT_TOKEN_TYPE,
    TOKEN_ID_PATTERN,
    form_body,
    json_body,
    oauth_error,
    ref,
    response,
)

__all__ = ["PATHS", "PROXY_RESPONSES"]

Json = dict[str, Any]

_LIMITED = {"429": ref("responses", "RateLimited"), "500": ref("responses", "ServerError")}
_STORE = {"503": ref("responses", "StoreUnavailable")}
_TOO_LARGE = {"413": ref("responses", "BodyTooLarge")}
_NO_STORE = {"Cache-Control": ref("headers", "NoStore")}
_FORM_RULES = (
    "`application/x-www-form-urlencoded`, at most `[server] max_body_bytes`, 16 fields, "
    "each sent once."
)
_RETRY_AFTER = {"Retry-After": ref("headers", "RetryAfter")}
_PROXY_METHODS = ("get", "head", "post", "put", "patch", "delete")

_PROXY_PATH: Json = {
    "summary": "Call a connector's API with a broker token",
    "description": "The broker checks the token (signature, `aud` = this connector, "
    "issued here and not revoked, its job binding), that the path is plain and that "
    "a route of the connector maps this method and path to a scope the token holds; "
    "then forwards the call to the connector's `base_url` + path with the upstream "
    "credential injected. Only the route's query parameters and an allowlist of "
    "headers pass; redirects are not followed. Not audited: counted in "
    "`jobtoken_proxy_requests_total`. The statuses listed are the broker's own "
    "refusals (a `ProxyError` body); the connector's API may answer any status.",
    "parameters": [
        {
            "name": "connector",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": CONNECTOR_NAME_PATTERN},
        },
        {
            "name": "path",
            "in": "path",
            "required": True,
            "description": "The rest of the URL path, slashes included; no empty, `.` "
            "or `..` segment, no `;`, no encoded `/` or `\\`.",
            "schema": {"type": "string"},
        },
    ],
}


def _proxy_error(description: str, **headers: Json) -> Json:
    return response(description, json_body(ref("schemas", "ProxyError")), **headers)


#: the proxy's answers, shared by its six operations (``components/responses``)
PROXY_RESPONSES: Json = {
    "ProxyForwarded": response(
        "The connector's answer, its status and body as they came; only content-type, "
        "etag, last-modified, cache-control, retry-after and location pass.",
        {"*/*": {"schema": {}}},
    ),
    "ProxyBadRequest": _proxy_error("Unsafe path, or a query parameter the route does not list."),
    "ProxyInvalidToken": _proxy_error(
        "No broker token, or one that is invalid, expired, revoked or not issued here.",
        **{"WWW-Authenticate": {"schema": {"const": 'Bearer error="invalid_token"'}}},
    ),
    "ProxyForbidden": _proxy_error("No route allows this call, or the token lacks its scope."),
    "ProxyNotFound": _proxy_error("No proxied connector of that name."),
    "ProxyBodyTooLarge": _proxy_error("The body is over `[proxy] max_request_bytes`."),
    "ProxyBadGateway": _proxy_error(
        "The connector's API failed (too slow, answer too large, unreachable) or its "
        "OAuth provider refused the broker."
    ),
    "ProxyUnavailable": _proxy_error(
        "The store, the connector's credential or its OAuth provider is unavailable; "
        "`Retry-After` when the cause is temporary.",
        **{"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
    ),
}
_PROXY_STATUSES = {
    "default": "ProxyForwarded",
    "400": "ProxyBadRequest",
    "401": "ProxyInvalidToken",
    "403": "ProxyForbidden",
    "404": "ProxyNotFound",
    "413": "ProxyBodyTooLarge",
    "502": "ProxyBadGateway",
    "503": "ProxyUnavailable",
}
_PROXY_BODY: Json = {
    "description": "Forwarded as it is, up to `[proxy] max_request_bytes`.",
    "required": False,
    "content": {"*/*": {"schema": {}}},
}


def _proxy_operation(method: str) -> Json:
    return {
        "operationId": f"proxy_{method}",
        "tags": ["proxy"],
        "security": [{"brokerToken": []}],
        **({} if method in ("get", "head", "delete") else {"requestBody": _PROXY_BODY}),
        "responses": {
            **{status: ref("responses", name) for status, name in _PROXY_STATUSES.items()},
            **_LIMITED,
        },
    }


_TOKEN: Json = {
    "operationId": "token_exchange",
    "summary": "Exchange the job's ID token for a connector token (RFC 8693)",
    "description": "Every decision, issued or denied, is one audit record (with the "
    "request id) committed before the answer. A token is returned only after its record.",
    "tags": ["oauth"],
    "security": [],
    "requestBody": form_body(ref("schemas", "TokenExchangeRequest"), _FORM_RULES),
    "responses": {
        "200": response("Issued.", json_body(ref("schemas", "TokenExchangeResponse")), **_NO_STORE),
        "400": oauth_error(
            "Refused; `error_description` says which check failed and what to change.",
            "invalid_request",
            "invalid_grant",
            "unauthorized_client",
            "unsupported_grant_type",
            "invalid_scope",
            "invalid_target",
        ),
        **_TOO_LARGE,
        **_STORE,
        **_LIMITED,
    },
}

_REVOKE: Json = {
    "operationId": "revoke",
    "summary": "Revoke a token (RFC 7009)",
    "description": "By possession (`token`), or by `token_id` with a fresh ID token of "
    "the same job (repository, run, attempt and job). An unknown, expired, already "
    "revoked or other job's token gets the same 200. A shared credential (each job of a "
    "passthrough connector leases the same value) with active leases is not revoked by "
    "possession alone: 400 `unsupported_token_type` (which tells its holder that jobs lease "
    "it now); with a job's ID token, that job's lease only.",
    "tags": ["oauth"],
    "security": [],
    "requestBody": form_body(
        {
            "anyOf": [
                {
                    "type": "object",
                    "title": "by possession",
                    "required": ["token"],
                    "properties": {
                        "token": {"type": "string", "minLength": 1},
                        "token_type_hint": {
                            "type": "string",
                            "description": "Accepted and ignored.",
                        },
                        "subject_token": {
                            "type": "string",
                            "description": "Optional: a fresh ID token of a job. Only the "
                            "token's leases bound to that job are revoked; a shared "
                            "credential needs it (`invalid_grant` when it does not verify).",
                        },
                        "subject_token_type": SUBJECT_TOKEN_TYPE,
                    },
                },
                {
                    "type": "object",
                    "title": "by token id",
                    "required": ["token_id", "subject_token", "subject_token_type"],
                    "properties": {
                        "token_id": {"type": "string", "pattern": TOKEN_ID_PATTERN},
                        "subject_token": {
                            "type": "string",
                            "description": "A fresh ID token of the job the token is bound "
                            "to (`invalid_grant` when it does not verify).",
                        },
                        "subject_token_type": SUBJECT_TOKEN_TYPE,
                    },
                },
            ],
            "maxProperties": 16,
        },
        _FORM_RULES + " When `token` is sent, `token_id` is ignored.",
    ),
    "responses": {
        "200": response("Revoked, or nothing to revoke.", **_NO_STORE),
        "400": oauth_error(
            "No token; an ID token that is missing (by token id), without its type, or "
            "that does not verify; or a shared credential without an ID token of the job.",
            "invalid_request",
            "invalid_grant",
            "unsupported_token_type",
        ),
        **_TOO_LARGE,
        **_STORE,
        **_LIMITED,
    },
}

_INTROSPECT: Json = {
    "operationId": "introspect",
    "summary": "Introspect a token (RFC 7662)",
    "description": "For resource servers configured as introspection clients. Audited "
    "with the client id and the request id.",
    "tags": ["oauth"],
    "security": [{"introspectionClient": []}],
    "requestBody": form_body(
        {
            "type": "object",
            "required": ["token"],
            "maxProperties": 16,
            "properties": {
                "token": {"type": "string", "minLength": 1},
                "token_type_hint": {"type": "string", "description": "Accepted and ignored."},
            },
        },
        _FORM_RULES,
    ),
    "responses": {
        "200": response(
            "The token's state.", json_body(ref("schemas", "Introspection")), **_NO_STORE
        ),
        "400": oauth_error("No token, or a malformed form.", "invalid_request"),
        "401": oauth_error(
            "No client credentials, or not those of an `[[introspection_clients]]` entry.",
            "invalid_client",
            **{"WWW-Authenticate": {"schema": {"const": 'Basic realm="jobtoken"'}}},
        ),
        **_TOO_LARGE,
        **_STORE,
        **_LIMITED,
    },
}

_WEBHOOK: Json = {
    "operationId": "github_webhook",
    "summary": "GitHub `workflow_job` events: revoke every token of a completed job",
    "description": "The signature is checked over the exact body, after the size cap and "
    "before anything else. `ping` is acknowledged; a delivery already handled "
    "(`X-GitHub-Delivery`) changes nothing; other events are ignored.",
    "tags": ["github"],
    "security": [{"githubWebhookSignature": []}],
    "parameters": [
        {"name": "X-GitHub-Event", "in": "header", "schema": {"type": "string"}},
        {
            "name": "X-GitHub-Delivery",
            "in": "header",
            "schema": {"type": "string", "pattern": "^[0-9A-Za-z-]{1,64}$"},
        },
    ],
    "requestBody": {
        "required": True,
        "description": "GitHub's event payload, up to `[webhook] max_body_bytes`.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "responses": {
        "200": response(
            '`{"ok": true}` for ping, `{"duplicate": true}` for a delivery already '
            "handled, else the number of tokens revoked.",
            json_body(
                {
                    "type": "object",
                    "properties": {
                        "ok": {"const": True},
                        "duplicate": {"const": True},
                        "revoked": {"type": "integer", "minimum": 0},
                    },
                }
            ),
        ),
        "202": response(
            "Ignored: another event, or not a completed job.",
            json_body({"type": "object", "properties": {"ignored": {"const": True}}}),
        ),
        **{
            status: response(description, json_body(ref("schemas", "WebhookError")))
            for status, description in (
                ("400", "A malformed `X-GitHub-Delivery` or `Content-Length`."),
                ("401", "`X-Hub-Signature-256` is missing or wrong."),
                ("404", "No webhook secret is configured (`[webhook]`)."),
                ("413", "The body is over `[webhook] max_body_bytes`."),
            )
        },
        **_STORE,
        **_LIMITED,
    },
}

_GET_ROUTES: dict[str, Json] = {
    "/.well-known/oauth-authorization-server": {
        "operationId": "authorization_server_metadata",
        "summary": "Authorization server metadata (RFC 8414)",
        "tags": ["oauth"],
        "responses": {
            "200": response(
                "The metadata.", json_body(ref("schemas", "AuthorizationServerMetadata"))
            ),
            **_LIMITED,
        },
    },
    "/.well-known/jwks.json": {
        "operationId": "jwks",
        "summary": "The public keys that verify minted tokens (RFC 7517)",
        "tags": ["oauth"],
        "responses": {
            "200": response(
                "The current and previous signing keys.",
                json_body(ref("schemas", "JsonWebKeySet")),
                **{"Cache-Control": {"schema": {"const": "public, max-age=300"}}},
            ),
            **_STORE,
            **_LIMITED,
        },
    },
    "/healthz": {
        "operationId": "readiness",
        "summary": "Readiness: the store answers",
        "description": "Not rate limited. Take the broker out of rotation on 503.",
        "tags": ["operations"],
        "responses": {
            "200": response("Ready.", json_body(ref("schemas", "Health"))),
            "503": response(
                "The store does not answer.", json_body(ref("schemas", "Health")), **_RETRY_AFTER
            ),
            "500": ref("responses", "ServerError"),
        },
    },
    "/livez": {
        "operationId": "liveness",
        "summary": "Liveness: the process answers",
        "description": "Not rate limited, and independent of the store: do not restart "
        "a broker for a store outage.",
        "tags": ["operations"],
        "responses": {
            "200": response(
                "Alive.",
                json_body({"type": "object", "properties": {"status": {"const": "alive"}}}),
            )
        },
    },
    "/metrics": {
        "operationId": "metrics",
        "summary": "Prometheus metrics of every worker",
        "description": "Not rate limited. Open unless a metrics token is configured.",
        "tags": ["operations"],
        "security": [{}, {"metricsToken": []}],
        "responses": {
            "200": response(
                "The Prometheus text format.",
                {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
            ),
            "401": response(
                "A metrics token is configured and was not sent.",
                {"text/plain": {"schema": {"type": "string"}}},
                **{"WWW-Authenticate": {"schema": {"const": 'Bearer realm="jobtoken-metrics"'}}},
            ),
            "500": ref("responses", "ServerError"),
        },
    },
    "/openapi.json": {
        "operationId": "openapi",
        "summary": "This document",
        "tags": ["operations"],
        "responses": {
            "200": response("The OpenAPI 3.1 document.", json_body({"type": "object"})),
            **_LIMITED,
        },
    },
}

PATHS: Json = {
    "/token": {"post": _TOKEN},
    "/revoke": {"post": _REVOKE},
    "/introspect": {"post": _INTROSPECT},
    "/webhooks/github": {"post": _WEBHOOK},
    "/proxy/{connector}/{path}": {
        **_PROXY_PATH,
        **{m: _proxy_operation(m) for m in _PROXY_METHODS},
    },
    **{path: {"get": operation} for path, operation in _GET_ROUTES.items()},
}
