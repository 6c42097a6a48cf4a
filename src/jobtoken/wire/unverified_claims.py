"""An ID token's claims read without verifying it: for messages, never for decisions.

When a provider refuses an exchange, the author needs to see which of the job's
claims a trust rule compared (``repository``, ``ref``, ``environment``, …). The
provider verified the token; here we only read its payload to print it, bounded
in size, and neutralized for the log. Nothing read here decides anything.

Public API: `JOB_CLAIMS`, `unverified_claims(token)`, `job_claims(token)`.
"""

from __future__ import annotations

import base64
import json

from jobtoken.wire.text import neutralize

__all__ = ["JOB_CLAIMS", "job_claims", "unverified_claims"]

#: the claims that identify a job and appear in trust rules; none is a secret
JOB_CLAIMS = (
    "sub",
    "aud",
    "iss",
    "repository",
    "repository_owner",
    "ref",
    "environment",
    "event_name",
    "workflow_ref",
    "job_workflow_ref",
    "run_id",
)
MAX_PAYLOAD_CHARS = 16 * 1024
MAX_CLAIM_CHARS = 200


def unverified_claims(token: str) -> dict[str, object]:
    """The payload of a compact JWT as a dict; {} when it is not one (or too large)."""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > MAX_PAYLOAD_CHARS:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, RecursionError):
        return {}
    return payload if isinstance(payload, dict) else {}


def job_claims(token: str) -> dict[str, str]:
    """The `JOB_CLAIMS` of `token` as printable, neutralized strings; {} if unreadable.

    A list (a multi-valued ``aud``) is shown space separated; other shapes are left out.
    """
    payload = unverified_claims(token)
    shown: dict[str, str] = {}
    for name in JOB_CLAIMS:
        value = payload.get(name)
        if isinstance(value, list):
            value = " ".join(str(item) for item in value)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            shown[name] = neutralize(str(value), limit=MAX_CLAIM_CHARS)
    return shown
