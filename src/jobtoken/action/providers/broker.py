"""The `broker` provider: RFC 8693 token exchange with the jobtoken broker (or any
RFC 8693 endpoint), and RFC 7009 revocation.

Exchange: ``POST <broker-url>/token`` as a form with

- ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``
- ``subject_token=<ID token>``, ``subject_token_type=urn:ietf:params:oauth:token-type:id_token``
- ``requested_token_type=urn:ietf:params:oauth:token-type:access_token``
- ``resource=<connector>``, ``scope=<scopes>`` (when any), ``ttl=<seconds>``
  (the requested lifetime; a broker may issue a shorter one, never a longer one)

The issued token type may be ``…:access_token`` or ``…:jwt`` (the jobtoken
broker mints JWTs). Every attempt carries a fresh ID token (brokers accept each `jti` once). An RFC
6749 §5.2 error answer becomes one `ProviderError` with the error code and the
sanitized description. A 404, 405 or 501 without an OAuth error code (or a 200 that
is not a JSON object) means `broker-url` names no broker endpoint: the error says
so, quoting broker-url and the URL requested (the client retries none of them).

Revocation: ``POST <broker-url>/revoke`` with ``token=<token>`` and
``token_type_hint=access_token`` (RFC 7009); or, without the token, with
``token_id=<token-id>`` and a fresh ID token of the same job as
``subject_token``/``subject_token_type``. HTTP 200 is success (also for
unknown or expired tokens). A 400 ``unsupported_token_type`` to the token alone
says it is a lease of a credential that every job of the connector gets, so
possession cannot say whose lease it is: the request is sent again with a fresh
ID token of this job, and the broker revokes this job's lease only.
"""

from __future__ import annotations

import re

from jobtoken.action.checks import MIN_TOKEN_LENGTH
from jobtoken.action.errors import HttpError, ProviderError
from jobtoken.action.http.client import Request, Response, describe_url, fetch, form_request
from jobtoken.action.provider import ExchangeRequest, IssuedToken, Provider, RevokeRequest
from jobtoken.wire.grammar import TOKEN_ID, split_scopes
from jobtoken.wire.oauth_terms import (
    ACCESS_TOKEN_TYPE,
    ERROR_CODES,
    ID_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE_GRANT,
    TTL_LIMITS,
)
from jobtoken.wire.text import neutralize

__all__ = ["ACCESS_TOKEN_TYPE", "ID_TOKEN_TYPE", "PROVIDER", "TOKEN_EXCHANGE_GRANT"]

MAX_RESPONSE_BYTES = 64 * 1024
#: a `scope` in the response that is not a string: fails the granted-scopes check
INVALID_SCOPE = "(scope is not a string)"
_ERROR_CODE = re.compile(r"^[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}\Z")

#: what to do, per RFC 6749/8693 error code
HINTS = {
    "invalid_grant": "The broker did not accept the job's ID token (issuer, audience, "
    "expiry, replay, or its job has completed): check the audience input and the broker's "
    "issuers, and request tokens only while the job runs",
    "invalid_scope": "Ask for fewer scopes; a connector's scopes are the broker operators' "
    "to add, a policy's the repository admins' to allow",
    "invalid_target": "The broker has no such connector, or no policy lets this job use it",
    "unauthorized_client": "No policy of the repository admins matches this job",
    "access_denied": "No policy of the repository admins matches this job",
    "invalid_request": "The request was malformed: check the inputs (and the action version)",
}
#: error codes whose hint is a guess among causes: left out when the broker names the cause
#: (an invalid policy file is not "no policy matches")
_GENERIC_HINTS = frozenset({"invalid_target", "unauthorized_client"})
#: the RFC of each endpoint, for "this is not one" messages
_ENDPOINT_RFCS = {"/token": "RFC 8693", "/revoke": "RFC 7009"}
#: statuses (without an RFC 6749 body) that say the server has no such endpoint at all:
#: never retried (a 501 is not retried by the client), reported as a broker-url mistake
_NOT_AN_ENDPOINT = frozenset({404, 405, 501})


def exchange(request: ExchangeRequest) -> IssuedToken:
    inputs = request.inputs
    broker_url = _broker_url(inputs.broker_url)
    audience = inputs.audience or broker_url
    connector = inputs.connector or ""

    def make_request() -> Request:
        fields = [
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("subject_token", request.id_token(audience)),
            ("subject_token_type", ID_TOKEN_TYPE),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("resource", connector),
        ]
        if inputs.scopes:
            fields.append(("scope", " ".join(inputs.scopes)))
        fields.append(("ttl", str(inputs.ttl)))
        return form_request(f"{broker_url}/token", fields)

    response = fetch(make_request, deadline=request.deadline, max_bytes=MAX_RESPONSE_BYTES)
    if response.status != 200:
        raise _refusal("the broker refused the exchange", response, inputs.broker_url, "/token")
    if not response.body.lstrip().startswith(b"{"):  # a web page, say: no token endpoint
        raise ProviderError(
            f"the broker answered HTTP 200 to POST {describe_url(response.url)} with a body "
            f"that is not a JSON object: {_not_an_endpoint(inputs.broker_url, '/token')}"
        )
    body = response.json_object("the broker")
    if not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise ProviderError(  # a health or status endpoint, say: no token to check or revoke
            f"the broker answered HTTP 200 to POST {describe_url(response.url)} with JSON "
            f"that is not a token response (no access_token): "
            f"{_not_an_endpoint(inputs.broker_url, '/token')}"
        )
    return parse_token_response(body)


def parse_token_response(body: dict[str, object]) -> IssuedToken:
    """The RFC 8693 §2.2.1 response as an `IssuedToken`; invalid fields fail the checks."""
    access_token = body.get("access_token")
    access_token = access_token if isinstance(access_token, str) else ""
    token_type = body.get("token_type")
    issued_type = body.get("issued_token_type")
    expires_in = body.get("expires_in")
    if "expires_in" in body and (not isinstance(expires_in, int) or isinstance(expires_in, bool)):
        expires_in = 0  # present but not an integer: refused by the expires-in check
    scope, limited_by = body.get("scope"), body.get("ttl_limited_by")
    scopes: tuple[str, ...] | None
    if scope is None:
        scopes = None
    elif isinstance(scope, str):
        scopes = split_scopes(scope)
    else:
        scopes = (INVALID_SCOPE,)
    return IssuedToken(
        access_token=access_token,
        token_type=token_type if isinstance(token_type, str) else "",
        issued_token_type=issued_type if isinstance(issued_type, str) else None,
        expires_in=expires_in if isinstance(expires_in, int) else None,
        scopes=scopes,
        token_id=token_id_of(body.get("token_id"), access_token),
        upstream_revoked_at_job_end=body.get("upstream_revoked_at_job_end") is True,
        ttl_limited_by=limited_by
        if isinstance(limited_by, str) and limited_by in TTL_LIMITS
        else "",
    )


def token_id_of(given: object, access_token: str) -> str:
    """The broker's `token_id`, else the `jti` of a JWT token, else `sha256:` + 32 hex.

    Never derived reversibly from the token: a SHA-256 prefix identifies it
    (the broker's audit store keys tokens by SHA-256) without revealing it. A
    `token_id` that holds the whole token is not an identifier but the secret: it
    is printed in the log and the summary, where `neutralize` may alter it
    (``::`` becomes ``: :``) so that the mask no longer matches; it is replaced.
    """
    # (a token shorter than MIN_TOKEN_LENGTH is refused by the checks anyway)
    holds_token = (
        len(access_token) >= MIN_TOKEN_LENGTH and isinstance(given, str) and access_token in given
    )
    if isinstance(given, str) and TOKEN_ID.match(given) and not holds_token:
        return given
    import hashlib  # only for a broker that does not say

    from jobtoken.wire.unverified_claims import unverified_claims

    jti = unverified_claims(access_token).get("jti")
    if isinstance(jti, str) and TOKEN_ID.match(jti):
        return jti
    return "sha256:" + hashlib.sha256(access_token.encode("utf-8")).hexdigest()[:32]


def revoke(request: RevokeRequest) -> str:
    broker_url = _broker_url(request.broker_url)
    url, audience = f"{broker_url}/revoke", request.audience or broker_url

    def job_proof() -> list[tuple[str, str]]:
        id_token = request.id_token(audience)
        return [("subject_token", id_token), ("subject_token_type", ID_TOKEN_TYPE)]

    if request.token:
        by_possession = [("token", request.token), ("token_type_hint", "access_token")]
        response = fetch(
            lambda: form_request(url, by_possession),
            deadline=request.deadline,
            max_bytes=MAX_RESPONSE_BYTES,
        )
        done = "revoked the token (or it had already expired or been revoked)"
        if _shared_credential(response):
            # every job of the connector holds this credential: prove which job we are
            response = fetch(
                lambda: form_request(url, by_possession + job_proof()),
                deadline=request.deadline,
                max_bytes=MAX_RESPONSE_BYTES,
            )
            done = (
                "revoked this job's lease of the connector's shared credential (the "
                "credential itself stays valid upstream)"
            )
    elif request.token_id:
        by_id = [("token_id", request.token_id)]
        response = fetch(
            lambda: form_request(url, by_id + job_proof()),
            deadline=request.deadline,
            max_bytes=MAX_RESPONSE_BYTES,
        )
        done = f"revoked the token {request.token_id} (or it had already expired or been revoked)"
    else:
        return "nothing to revoke"
    if response.status != 200:
        raise _refusal(
            "the broker did not revoke the token", response, request.broker_url, "/revoke"
        )
    return done


def _shared_credential(response: Response) -> bool:
    """The broker's answer to a lease of a credential that every job of the connector
    gets: possession cannot say whose lease it is (400 ``unsupported_token_type``)."""
    if response.status != 400:
        return False
    try:
        return response.json_object("the broker").get("error") == "unsupported_token_type"
    except HttpError:
        return False


def _broker_url(url: str | None) -> str:
    if not url:  # read_exchange_inputs requires it for this provider
        raise ProviderError("broker-url is required with provider: broker")
    return url.rstrip("/")


def _refusal(what: str, response: Response, broker_url: str | None, endpoint: str) -> ProviderError:
    """One readable error from an RFC 6749 §5.2 answer (or any other non-200 answer)."""
    where = f"POST {describe_url(response.url)}"
    try:
        body: dict[str, object] | None = response.json_object("the broker")
    except HttpError:  # not JSON: reported by status below
        body = None
    status = response.status
    given = body.get("error") if body else None
    code = given if isinstance(given, str) and _ERROR_CODE.match(given) else None
    # a web server's own 404 may well be JSON with an "error" of its own ("not_found")
    if status in _NOT_AN_ENDPOINT and code not in ERROR_CODES:
        if status == 404:
            return ProviderError(
                f"{what}: {where} answered HTTP 404 (no such path there): check broker-url, "
                f"{_broker_url_now(broker_url)}: it must be the broker's base URL, to which "
                f"the action appends {endpoint}"
            )
        return ProviderError(
            f"{what}: {where} answered HTTP {status}: {_not_an_endpoint(broker_url, endpoint)}"
        )
    if code is None:
        retry = " (after retries; try again later)" if status >= 500 else ""
        return ProviderError(f"{what}: {where} answered HTTP {status}{retry}")
    description = body.get("error_description") if body else None
    message = f"{what} (HTTP {response.status}): {neutralize(code, 64)}"
    if isinstance(description, str) and description:
        message += f": {neutralize(description, 300)}"
    hint = HINTS.get(code)
    if hint and not (code in _GENERIC_HINTS and isinstance(description, str) and description):
        message += f". {hint}"
    return ProviderError(message, denied=response.status in (400, 401, 403))


def _not_an_endpoint(broker_url: str | None, endpoint: str) -> str:
    rfc = _ENDPOINT_RFCS.get(endpoint, "OAuth")
    return (
        f"this URL does not look like a jobtoken broker/{rfc} endpoint: check broker-url, "
        f"{_broker_url_now(broker_url)}"
    )


def _broker_url_now(broker_url: str | None) -> str:
    """What the workflow set, for messages: scheme, host and path only."""
    return f"now {describe_url(broker_url)}" if broker_url else "which is empty"


PROVIDER = Provider(
    name="broker",
    exchange=exchange,
    revoke=revoke,
    token_type="Bearer",  # noqa: S106
    issued_token_types=frozenset({ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE}),
)
