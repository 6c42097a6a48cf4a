"""``POST /webhooks/github``: revoke every token of a job when GitHub says it completed.

A delivery is accepted only with a valid ``X-Hub-Signature-256`` (HMAC-SHA256 of the
exact body with the webhook secret, compared in constant time) and a body under the
configured cap, checked before the signature is computed over it. ``workflow_job``
events with ``action: completed``, in order:

1. drop a delivery already handled (``X-GitHub-Delivery``, kept ``DELIVERY_KEEP_SECONDS``;
   a delivery without the header is handled, since handling is idempotent);
2. record the job as ended (``store.record_job_end``) until every ID token it could have
   fetched has expired, plus leeway: from then on ``/token`` refuses its exchanges;
3. revoke the tokens bound to that repository, run, attempt and job;
4. only then remember the delivery, so that a delivery that failed half way is redone.

The job is named by its check run id, the ``check_run_id`` of its ID tokens: the last
segment of ``workflow_job.check_run_url``, else ``workflow_job.id`` (equal on
github.com). A late or repeated report changes nothing. ``ping`` is acknowledged;
everything else is ignored with 202.

Public API: :func:`handle_github_webhook`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobtoken.broker.assembly import Broker
from jobtoken.broker.errors import BrokerError
from jobtoken.broker.http.blocking import blocking
from jobtoken.broker.http.oauth import read_body
from jobtoken.broker.http.request_log import request_id
from jobtoken.wire.strict_json import StrictJsonError, loads_strict

__all__ = ["DELIVERY_KEEP_SECONDS", "handle_github_webhook", "signature_for"]

#: how long a handled delivery id is remembered (GitHub redelivers for up to 3 days)
DELIVERY_KEEP_SECONDS = 4 * 24 * 3600
#: margin on top of the longest ID token lifetime and twice the clock leeway
JOB_END_MARGIN_SECONDS = 60
_DELIVERY_ID = re.compile(r"[0-9A-Za-z-]{1,64}")
_POSITIVE = re.compile(r"[1-9][0-9]{0,19}")


def signature_for(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


async def handle_github_webhook(request: Request, broker: Broker) -> Response:
    if broker.webhook_secret is None:
        return JSONResponse({"error": "webhook not configured"}, status_code=404)
    try:
        body = await read_body(request, broker.config.webhook.max_body_bytes)
    except BrokerError as exc:
        broker.metrics.count("jobtoken_webhooks_total", outcome="refused")
        return JSONResponse({"error": exc.description}, status_code=exc.status)
    given = request.headers.get("x-hub-signature-256", "").encode("utf-8", "surrogatepass")
    expected = signature_for(broker.webhook_secret, body).encode("ascii")
    if not hmac.compare_digest(expected, given):  # bytes: a str compare raises on non-ASCII
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
    delivery = request.headers.get("x-github-delivery", "")
    if delivery and not _DELIVERY_ID.fullmatch(delivery):
        broker.metrics.count("jobtoken_webhooks_total", outcome="refused")
        return JSONResponse({"error": "malformed X-GitHub-Delivery"}, status_code=400)
    seen = bool(delivery) and await blocking(broker.store.delivery_seen, delivery)
    if seen:
        broker.metrics.count("jobtoken_webhooks_total", outcome="duplicate")
        return JSONResponse({"duplicate": True})
    client = request.client.host if request.client else ""
    verifier = broker.verifier.config
    now = int(time.time())
    keep_until = (
        now
        + verifier.max_token_lifetime_seconds
        + 2 * verifier.leeway_seconds
        + JOB_END_MARGIN_SECONDS
    )

    def end_job() -> int:
        broker.store.record_job_end(**job, now=now, keep_until=keep_until)
        revoked = broker.registry.revoke_job(
            **job,
            client_address=client,
            user_agent=request.headers.get("user-agent", ""),
            request_id=request_id(request),
        )
        if delivery:
            broker.store.claim_delivery(delivery, now, now + DELIVERY_KEEP_SECONDS)
        return revoked

    revoked = await blocking(end_job)
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
    check_run_url = job.get("check_run_url")
    if isinstance(check_run_url, str) and check_run_url:
        last = check_run_url.rstrip("/").rpartition("/")[2]
        if not _POSITIVE.fullmatch(last):
            return None
        check_run_id = last
    return {
        "repository_id": repository_id,
        "run_id": run_id,
        "run_attempt": run_attempt,
        "check_run_id": check_run_id,
    }
