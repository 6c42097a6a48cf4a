"""The reusable parts of the broker's OpenAPI document (``document.py``): the bodies,
headers, shared error responses and security schemes its operations refer to.

Written by hand, as data, from what the handlers answer (``http/app.py``, ``http/oauth.py``,
``http/proxy.py``, ``http/webhook.py``, ``tokens/registry.py``, ``ops/rate_limits.py``,
``http/store_outage.py``); the names' patterns are the grammar's own (``wire/grammar.py``).
The helpers only spell the repeated shapes once.

Public API: :data:`COMPONENTS`, :func:`ref`, :func:`response`, :func:`json_body`,
:func:`oauth_error`, :func:`form_body`, and the patterns :data:`CONNECTOR_NAME_PATTERN`,
:data:`SCOPE_LIST_PATTERN`, :data:`TOKEN_ID_PATTERN`.
"""

from __future__ import annotations

from typing import Any

from jobtoken.wire import grammar
from jobtoken.wire.oauth_terms import (
    ACCESS_TOKEN_TYPE,
    ERROR_CODES,
    ID_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE_GRANT,
    TTL_LIMITS,
)

__all__ = ["COMPONENTS", "form_body", "json_body", "oauth_error", "ref", "response"]
__all__ += ["CONNECTOR_NAME_PATTERN", "SCOPE_LIST_PATTERN", "TOKEN_ID_PATTERN"]

Json = dict[str, Any]

CONNECTOR_NAME_PATTERN = grammar.json_schema_pattern(grammar.CONNECTOR_NAME)
SCOPE_LIST_PATTERN = grammar.json_schema_pattern(grammar.SCOPE, grammar.MAX_SCOPES)
TOKEN_ID_PATTERN = grammar.json_schema_pattern(grammar.TOKEN_ID)
#: what an active token's introspection always has (``tokens/registry.py``)
_INTROSPECTION_MEMBERS = (
    "active", "scope", "token_type", "exp", "iat", "nbf", "sub", "aud", "iss", "jti",
    "token_kind", "repository_id", "run_id", "run_attempt",
)  # fmt: skip
SUBJECT_TOKEN_TYPE: Json = {
    "type": "string",
    "enum": [ID_TOKEN_TYPE, JWT_TOKEN_TYPE],
    "description": "A GitHub Actions ID token is both an id_token and a jwt.",
}


def ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def json_body(schema: Json) -> Json:
    return {"application/json": {"schema": schema}}


def form_body(schema: Json, description: str) -> Json:
    return {
        "required": True,
        "description": description,
        "content": {"application/x-www-form-urlencoded": {"schema": schema}},
    }


def response(description: str, content: Json | None = None, **headers: Json) -> Json:
    """A response; every one carries ``X-Request-Id`` (``request_log.py``)."""
    body: Json = {
        "description": description,
        "headers": {"X-Request-Id": ref("headers", "RequestId"), **headers},
    }
    if content is not None:
        body["content"] = content
    return body


def oauth_error(description: str, *codes: str, **headers: Json) -> Json:
    """An RFC 6749 §5.2 error response whose ``error`` is one of ``codes``."""
    unknown = set(codes) - ERROR_CODES
    if unknown:
        raise ValueError(f"not OAuth error codes: {sorted(unknown)}")
    schema = {
        "allOf": [
            ref("schemas", "OAuthError"),
            {"properties": {"error": {"enum": sorted(codes)}}},
        ]
    }
    return response(
        description, json_body(schema), **{"Cache-Control": ref("headers", "NoStore"), **headers}
    )


_RETRY_AFTER = {"Retry-After": ref("headers", "RetryAfter")}

COMPONENTS: Json = {
    "securitySchemes": {
        "introspectionClient": {
            "type": "http",
            "scheme": "basic",
            "description": "An `[[introspection_clients]]` entry of the broker's config "
            "(client id and secret).",
        },
        "brokerToken": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A minted token the broker issued for this connector (POST /token).",
        },
        "metricsToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "The `[server] metrics_token_file`/`metrics_token_env` secret; "
            "needed only when it is configured.",
        },
        "githubWebhookSignature": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Hub-Signature-256",
            "description": "`sha256=` + HMAC-SHA256 of the exact body with the "
            "`[webhook]` secret, compared in constant time.",
        },
    },
    "headers": {
        "RequestId": {
            "description": "The broker's random id of this request: in its log line and "
            "in the audit record of the decision it asked for.",
            "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        },
        "RetryAfter": {
            "description": "Whole seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        },
        "NoStore": {"schema": {"type": "string", "const": "no-store"}},
    },
    "responses": {
        "BodyTooLarge": oauth_error(
            "The body is over the configured cap (`[server] max_body_bytes`, "
            "`[webhook] max_body_bytes` or `[proxy] max_request_bytes`).",
            "invalid_request",
        ),
        "RateLimited": oauth_error(
            "Too many requests from this client address (`[limits] client_*`) or, on "
            "POST /token, for this repository (`[limits] repository_*`).",
            "temporarily_unavailable",
            **_RETRY_AFTER,
        ),
        "StoreUnavailable": oauth_error(
            "The broker's store cannot be reached or commit (on POST /token also: the "
            "connector's OAuth provider or GitHub is not answering). Nothing was issued.",
            "temporarily_unavailable",
            **_RETRY_AFTER,
        ),
        "ServerError": oauth_error(
            "An unexpected failure; the description says only `internal error`.",
            "server_error",
        ),
    },
    "schemas": {
        "OAuthError": {
            "type": "object",
            "description": "RFC 6749 §5.2. The description says which check failed and "
            "what to change; it never holds a secret.",
            "required": ["error", "error_description"],
            "properties": {
                "error": {"type": "string", "enum": sorted(ERROR_CODES)},
                "error_description": {
                    "type": "string",
                    "maxLength": 300,
                    "pattern": "^[ !#-\\[\\]-~]*$",
                },
            },
        },
        "TokenExchangeRequest": {
            "type": "object",
            "description": "RFC 8693 §2.1 as the broker reads it. At most 16 fields, each "
            "sent once (a repeated field is `invalid_request`); others are ignored.",
            "required": ["grant_type", "subject_token", "subject_token_type", "scope"],
            "anyOf": [{"required": ["resource"]}, {"required": ["audience"]}],
            "maxProperties": 16,
            "properties": {
                "grant_type": {
                    "type": "string",
                    "const": TOKEN_EXCHANGE_GRANT,
                    "description": "Anything else is `unsupported_grant_type`.",
                },
                "subject_token": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The job's GitHub Actions OIDC ID token; checked "
                    "against the issuer allowlist, JWKS, audience, times and single use "
                    "(`invalid_grant` otherwise).",
                },
                "subject_token_type": SUBJECT_TOKEN_TYPE,
                "resource": {
                    "type": "string",
                    "pattern": CONNECTOR_NAME_PATTERN,
                    "description": "The connector's name (`invalid_target` when the "
                    "broker has no such connector).",
                },
                "audience": {
                    "type": "string",
                    "pattern": CONNECTOR_NAME_PATTERN,
                    "description": "Same as `resource`; when both are sent they must be "
                    "equal (`invalid_target`).",
                },
                "scope": {
                    "type": "string",
                    "pattern": SCOPE_LIST_PATTERN,
                    "description": f"1 to {grammar.MAX_SCOPES} scope names separated by single "
                    "spaces, each a scope of the connector (`invalid_scope`) that the "
                    "repository's policy allows for these claims (`unauthorized_client`).",
                },
                "requested_token_type": {
                    "type": "string",
                    "enum": [JWT_TOKEN_TYPE, ACCESS_TOKEN_TYPE],
                    "default": JWT_TOKEN_TYPE,
                    "description": "Checked only; the connector's kind decides what is "
                    "issued (`issued_token_type`).",
                },
                "ttl": {
                    "type": "string",
                    "pattern": "^[0-9]{1,6}$",
                    "description": "Requested lifetime in seconds (a jobtoken extension); "
                    "the broker issues the smallest of it, the policy's, the connector's "
                    "and `[tokens] max_ttl_seconds`.",
                },
                "actor_token": {
                    "not": {},
                    "description": "Delegation is not supported: `invalid_request`.",
                },
            },
        },
        "TokenExchangeResponse": {
            "type": "object",
            "description": "RFC 8693 §2.2.1.",
            "required": [
                "access_token",
                "issued_token_type",
                "token_type",
                "expires_in",
                "scope",
                "token_id",
            ],
            "properties": {
                "access_token": {"type": "string"},
                "issued_token_type": {
                    "type": "string",
                    "enum": [JWT_TOKEN_TYPE, ACCESS_TOKEN_TYPE],
                    "description": "jwt: a minted token; access_token: a passthrough lease "
                    "of the upstream credential.",
                },
                "token_type": {"type": "string", "const": "Bearer"},
                "expires_in": {"type": "integer", "minimum": 1},
                "scope": {"type": "string", "pattern": SCOPE_LIST_PATTERN},
                "token_id": {
                    "type": "string",
                    "pattern": TOKEN_ID_PATTERN,
                    "description": "Revokes the token with a fresh ID token of the job "
                    "(POST /revoke); also its audit records' `token_id`.",
                },
                "upstream_revoked_at_job_end": {
                    "type": "boolean",
                    "description": "Passthrough leases only: whether the broker revokes the "
                    "upstream token itself with this one.",
                },
                "ttl_limited_by": {"type": "string", "enum": list(TTL_LIMITS)},  # docs/broker.md
            },
        },
        "Introspection": {
            "oneOf": [
                {
                    "type": "object",
                    "description": "Unknown, expired, revoked, or another connector's token "
                    "for a client limited to some connectors: exactly this.",
                    "required": ["active"],
                    "properties": {"active": {"const": False}},
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "description": "RFC 7662 §2.2, with the token's job binding.",
                    "required": list(_INTROSPECTION_MEMBERS),
                    "properties": {
                        "active": {"const": True},
                        "scope": {"type": "string"},
                        "token_type": {"const": "Bearer"},
                        "exp": {"type": "integer"},
                        "iat": {"type": "integer"},
                        "nbf": {"type": "integer"},
                        "sub": {"type": "string"},
                        "aud": {"type": "string", "description": "The connector."},
                        "iss": {"type": "string", "format": "uri"},
                        "jti": {"type": "string", "description": "The token id."},
                        "token_kind": {"enum": ["minted", "passthrough"]},
                        "repository_id": {"type": "string"},
                        "run_id": {"type": "string"},
                        "run_attempt": {"type": "string"},
                        "check_run_id": {"type": "string"},
                        "active_leases": {"const": 1},  # passthrough leases only
                    },
                },
                {
                    "type": "object",
                    "description": "A shared credential of a passthrough connector, held by "
                    "several jobs under leases of their own: the members on which all those "
                    "leases agree (never `jti`), the span they cover (`exp` the latest, "
                    "`iat` and `nbf` the earliest), and how many leases are active.",
                    "required": ["active", "token_kind", "active_leases", "exp", "iat", "nbf"],
                    "properties": {
                        "active": {"const": True},
                        **{name: {"type": "integer"} for name in ("exp", "iat", "nbf")},
                        "token_kind": {"const": "passthrough"},
                        "active_leases": {"type": "integer", "minimum": 2},
                    },
                },
            ]
        },
        "AuthorizationServerMetadata": {
            "type": "object",
            "description": "RFC 8414 §2; URLs are under `[server] public_url`.",
            "properties": {
                **{
                    name: {"type": "string", "format": "uri"}
                    for name in (
                        "issuer",
                        "token_endpoint",
                        "revocation_endpoint",
                        "introspection_endpoint",
                        "jwks_uri",
                    )
                },
                "grant_types_supported": {"type": "array", "items": {"type": "string"}},
                "response_types_supported": {"type": "array", "maxItems": 0},
                **{
                    name: {"type": "array", "items": {"type": "string"}}
                    for name in (
                        "token_endpoint_auth_methods_supported",
                        "revocation_endpoint_auth_methods_supported",
                        "introspection_endpoint_auth_methods_supported",
                        "scopes_supported",
                    )
                },
            },
        },
        "JsonWebKeySet": {
            "type": "object",
            "description": "RFC 7517: the current signing key and the previous one.",
            "required": ["keys"],
            "properties": {
                "keys": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["kty", "kid", "alg", "use"],
                        "properties": {
                            "kty": {"enum": ["OKP", "EC"]},
                            "kid": {"type": "string"},
                            "alg": {"type": "string"},
                            "use": {"const": "sig"},
                            "crv": {"type": "string"},
                            "x": {"type": "string"},
                            "y": {"type": "string"},
                        },
                    },
                }
            },
        },
        "ProxyError": {
            "type": "object",
            "description": "Why the broker did not forward the call (RFC 6750 §3.1 codes, "
            "plus not_found and bad_gateway).",
            "required": ["error", "error_description"],
            "properties": {
                "error": {
                    "enum": [
                        "bad_gateway",
                        "insufficient_scope",
                        "invalid_request",
                        "invalid_token",
                        "not_found",
                        "temporarily_unavailable",
                    ]
                },
                "error_description": {"type": "string"},
            },
        },
        "WebhookError": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "Health": {
            "type": "object",
            "required": ["status", "store"],
            "properties": {
                "status": {"enum": ["ok", "unavailable"]},
                "store": {"enum": ["ok", "unavailable"]},
            },
        },
    },
}
