"""The OAuth vocabulary the action and the broker speak, spelled once.

- RFC 8693 (token exchange): the grant type and the token-type URNs.
- RFC 6749 §5.2, RFC 8693 §2.2.2, RFC 6750 §3.1 and RFC 7009 §2.2.1: the error
  codes a token, revocation or resource endpoint may answer. The broker refuses
  to raise any other code, and the action knows what each one means.
- jobtoken's own ``ttl_limited_by`` of a token answer: which limit made the token
  shorter than the ``ttl`` asked for, and who owns it (``TTL_LIMITS``).
"""

from __future__ import annotations

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "ERROR_CODES",
    "ID_TOKEN_TYPE",
    "JWT_TOKEN_TYPE",
    "SUBJECT_TOKEN_TYPES",
    "TOKEN_EXCHANGE_GRANT",
    "TTL_LIMITS",
]

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
#: what the broker accepts as `subject_token_type`: a GitHub ID token is both
SUBJECT_TOKEN_TYPES = (ID_TOKEN_TYPE, JWT_TOKEN_TYPE)

ERROR_CODES = frozenset(
    {
        # RFC 6749 §5.2 (token endpoint)
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        # RFC 8693 §2.2.2
        "invalid_target",
        # RFC 6749 §4.1.2.1 (also used for an unavailable store or upstream)
        "server_error",
        "temporarily_unavailable",
        # RFC 6750 §3.1 (resource endpoints: the proxy)
        "invalid_token",
        "insufficient_scope",
        # RFC 7009 §2.2.1
        "unsupported_token_type",
    }
)

#: ``ttl_limited_by`` -> whose limit it is and where it is set
TTL_LIMITS = {
    "policy": "the repository admins' policy (its rule's max_ttl)",
    "organization_policy": "the organization policy's max_ttl for this connector",
    "connector": "the connector's max_ttl_seconds, set by the broker's operators",
    "broker": "the broker's own [tokens] max_ttl_seconds, set by its operators",
}
