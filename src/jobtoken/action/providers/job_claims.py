"""The job's non-secret ID token claims, for messages that explain a refusal.

A cloud that refuses the exchange usually does so because a trust rule
(bound claims, a trust policy's ``sub`` condition, a federated credential's
subject) does not match the job's claims. Errors name the claim values
involved; this reads them from the ID token's payload without verifying it
(the provider verified it; we only print) and neutralizes them for the log.
"""

from __future__ import annotations

import base64
import json

from jobtoken.action.runtime import neutralize

__all__ = ["SHOWN_CLAIMS", "job_claims"]

#: claims that identify the job and appear in trust rules; none is a secret
SHOWN_CLAIMS = (
    "sub",
    "aud",
    "iss",
    "repository",
    "repository_owner",
    "ref",
    "environment",
    "job_workflow_ref",
    "event_name",
)
MAX_PAYLOAD_CHARS = 16 * 1024


def job_claims(id_token: str) -> dict[str, str]:
    """The ``SHOWN_CLAIMS`` of ``id_token`` as printable strings; {} if unreadable."""
    parts = id_token.split(".")
    if len(parts) != 3 or len(parts[1]) > MAX_PAYLOAD_CHARS:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return {}
    if not isinstance(payload, dict):
        return {}
    shown: dict[str, str] = {}
    for name in SHOWN_CLAIMS:
        value = payload.get(name)
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        if isinstance(value, str | int):
            shown[name] = neutralize(str(value), limit=200)
    return shown
