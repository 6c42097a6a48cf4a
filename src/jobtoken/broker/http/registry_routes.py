"""``POST /revoke`` (RFC 7009) and ``POST /introspect`` (RFC 7662) over HTTP: read the
form, prove the job where the request names one, and hand over to
:class:`~jobtoken.broker.tokens.registry.TokenRegistry`. Every refusal is audited.

``/revoke`` takes one of three forms, each answered 200 when well formed whether or not
it revoked anything (an unknown, expired or revoked token reveals nothing), but for the
refusal in form 1:

1. ``token``: by possession. A shared credential's lease (``TokenRecord``) is refused
   with 400 ``unsupported_token_type``: possession cannot say whose it is.
2. ``token`` + ``subject_token``/``subject_token_type`` (a fresh ID token of the job):
   the token's leases bound to exactly that job, and no other job's.
3. ``token_id`` + ``subject_token``/``subject_token_type``: the token of that id, if
   it is bound to exactly that job.

A bad ID token is ``invalid_grant`` with the verifier's reason, as at ``/token``.

Public API: :func:`revoke`, :func:`introspect`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from jobtoken.broker.assembly import Broker
from jobtoken.broker.errors import BrokerError
from jobtoken.broker.http.blocking import blocking
from jobtoken.broker.http.oauth import NO_STORE, basic_credentials, oauth_json, read_form
from jobtoken.broker.http.request_log import request_id
from jobtoken.broker.oidc.verifier import VerifiedClaims
from jobtoken.broker.store import JobKey, StoreError
from jobtoken.wire.oauth_terms import SUBJECT_TOKEN_TYPES

__all__ = ["introspect", "revoke"]


async def revoke(request: Request, broker: Broker) -> Response:
    client = request.client.host if request.client else ""
    user_agent, rid = request.headers.get("user-agent", ""), request_id(request)
    token_id = ""
    try:
        form = await read_form(request, broker.config.server.max_body_bytes)
        token, token_id = form.get("token", ""), form.get("token_id", "")
        if not (token or token_id):
            raise BrokerError("invalid_request", "token is missing", reason="missing_token")
        claims = None
        if "subject_token" in form or not token:  # with `token`, `token_id` is ignored
            claims = await _job_proof(broker, form, "token" if token else "token_id")
    except StoreError:
        raise  # the broker's failure, not a refusal: the edge answers the outage
    except BrokerError as refusal:
        reason = refusal.reason
        await blocking(
            lambda: broker.registry.refuse(
                reason,
                token_id=token_id,
                client_address=client,
                user_agent=user_agent,
                request_id=rid,
            )
        )
        raise
    if token:  # the registry audits a refusal of its own (a shared credential)
        await blocking(
            lambda: broker.registry.revoke(
                token,
                job=None if claims is None else _job(claims),
                claims=None if claims is None else claims.claims,
                client_address=client,
                user_agent=user_agent,
                request_id=rid,
            )
        )
    elif claims is not None:  # by token_id, which always needs the proof
        await blocking(
            lambda: broker.registry.revoke_own(
                token_id,
                job=_job(claims),
                claims=claims.claims,
                client_address=client,
                user_agent=user_agent,
                request_id=rid,
            )
        )
    return Response(status_code=200, headers=NO_STORE)


async def _job_proof(broker: Broker, form: dict[str, str], by: str) -> VerifiedClaims:
    """The verified claims of the request's ID token, which names the job."""
    if form.get("subject_token_type") not in SUBJECT_TOKEN_TYPES:
        raise BrokerError(
            "invalid_request",
            f"revoking by {by} for a job needs its ID token: subject_token, with "
            "subject_token_type the id_token or jwt token type",
            reason="unsupported_subject_token_type",
        )
    return await blocking(broker.verifier.verify, form.get("subject_token", ""))  # InvalidIdToken


def _job(claims: VerifiedClaims) -> JobKey:
    return JobKey(
        claims.repository_id, claims.run_id, claims.run_attempt, claims.check_run_id or ""
    )


async def introspect(request: Request, broker: Broker) -> Response:
    client_address, rid = request.client.host if request.client else "", request_id(request)
    credentials = basic_credentials(request)
    client = broker.authenticate_client(*credentials) if credentials else None
    if client is None:
        raise BrokerError(
            "invalid_client",
            "introspection needs HTTP Basic client credentials configured on the broker",
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="jobtoken"'},
        )
    try:
        form = await read_form(request, broker.config.server.max_body_bytes)
        token = form.get("token", "")
        if not token:
            raise BrokerError("invalid_request", "token is missing", reason="missing_token")
    except BrokerError as refusal:
        reason = refusal.reason
        await blocking(
            lambda: broker.registry.refuse(reason, client_address=client_address, request_id=rid)
        )
        raise
    body = await blocking(
        lambda: broker.registry.introspect(
            token,
            client_id=client.id,
            client_connectors=client.connectors,
            client_address=client_address,
            request_id=rid,
        )
    )
    return oauth_json(body)
