"""``POST /webhooks/github``: revoke every token of a job when GitHub says it completed.

A delivery is accepted only with a valid ``X-Hub-Signature-256`` (HMAC-SHA256 of the
exact body with the webhook secret, compared in constant time) and a body under the
configured cap, checked before the signature is computed over it. ``workflow_job``
events with ``action: completed`` revoke the tokens bound to that repository, run,
attempt and job (``workflow_job.id`` is the job's check run id, the ``check_run_id``
of its ID tokens); ``ping`` is acknowledged; everything else is ignored with 202.

Public API: :func:`handle_github_webhook`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobtoken.broker.assembly import Broker
from jobtoken.broker.oauth import OAuthError, read_body
from jobtoken.wire.strict_json import StrictJsonError, loads_strict

__all__ = ["handle_github_webhook", "signature_for"]


def signature_for(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


async def handle_github_webhook(request: Request, broker: Broker) -> Response:
    if broker.webhook_secret is None:
        return JSONResponse({"error": "webhook not configured"}, status_code=404)
    try:
        body = await read_body(request, broker.config.webhook.max_body_bytes)
    except OAuthError as exc:
        broker.metrics.count("jobtoken_webhooks_total", outcome="refused")
        return JSONResponse({"error": exc.description}, status_code=exc.status)
    given = request.headers.get("x-hub-signature-256", "")
    if not hmac.compare_digest(signature_for(broker.webhook_secret, body), given):
        broker.metrics.count("jobtoken_webhooks_total", outcome="bad_signature")
        return JSONResponse({"error": "invalid X-Hub-Signature-256"}, status_code=401)
    event = request.headers.get("x-github-event", "")
    if event == "ping":
        return JSONResponse({"ok": True})
    if event != "workflow_job":
        broker.metrics.count("jobtoken_webhooks_total", outcome="ignored")
        return JSONResponse({"ignored": True}, status_code=202)
    job = _completed_job(body)
    if job is None:
        broker.metrics.count("jobtoken_webhooks_total", outcome="ignored")
        return JSONResponse({"ignored": True}, status_code=202)
    client = request.client.host if request.client else ""
    revoked = await run_in_threadpool(
        lambda: broker.registry.revoke_job(
            **job, client_address=client, user_agent=request.headers.get("user-agent", "")
        )
    )
    broker.metrics.count("jobtoken_webhooks_total", outcome="revoked")
    return JSONResponse({"revoked": revoked})


def _completed_job(body: bytes) -> dict[str, str] | None:
    """repository_id, run_id, run_attempt, check_run_id of a completed job, else None."""
    try:
        payload: Any = loads_strict(body)
    except StrictJsonError:
        return None
    if not isinstance(payload, dict) or payload.get("action") != "completed":
        return None
    job, repository = payload.get("workflow_job"), payload.get("repository")
    if not isinstance(job, dict) or not isinstance(repository, dict):
        return None
    values = (repository.get("id"), job.get("run_id"), job.get("run_attempt"), job.get("id"))
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        return None
    repository_id, run_id, run_attempt, check_run_id = (str(v) for v in values)
    return {
        "repository_id": repository_id,
        "run_id": run_id,
        "run_attempt": run_attempt,
        "check_run_id": check_run_id,
    }
