"""The job's OIDC ID token, from the runner's token endpoint.

Public API:

- `RunnerIdTokens(env, runtime, deadline)` — ``fetch(audience)`` returns a
  fresh ID token (masked before anything else is written), ``last_claims``
  the non-secret claims of the last one for error reports.
- `MISSING_PERMISSION` — what to do when the job has no ID token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

from jobtoken.action.deadline import Deadline
from jobtoken.action.errors import HttpError, OidcError
from jobtoken.action.http.client import Request, check_url, describe_url, fetch
from jobtoken.action.runtime import Runtime

__all__ = ["MISSING_PERMISSION", "RunnerIdTokens"]

MAX_ID_TOKEN_BYTES = 64 * 1024
MISSING_PERMISSION = (
    "the runner offers no OIDC ID token to this job (ACTIONS_ID_TOKEN_REQUEST_URL and "
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set). Give the job `permissions: id-token: write` "
    "(at workflow or job level). Note that pull requests from forks and Dependabot runs never "
    "get an ID token: run this step only for trusted events."
)
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\Z")


class RunnerIdTokens:
    """ID tokens from the runner (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN)."""

    def __init__(self, env: Mapping[str, str], runtime: Runtime, deadline: Deadline) -> None:
        self.url = env.get("ACTIONS_ID_TOKEN_REQUEST_URL", "")
        self.request_token = env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
        self.runtime = runtime
        self.deadline = deadline
        self._last_id_token = ""
        self._masked_request_token = False

    def check_available(self) -> None:
        """Fail early, before any other network call, when the job has no ID token."""
        if not self.url or not self.request_token:
            raise OidcError(MISSING_PERMISSION)
        try:
            check_url(self.url)
        except ValueError as exc:
            raise OidcError(f"ACTIONS_ID_TOKEN_REQUEST_URL {exc}") from None

    def fetch(self, audience: str) -> str:
        """A fresh ID token for `audience`, already masked."""
        self.check_available()
        if not self._masked_request_token:
            self.runtime.mask(self.request_token)
            self._masked_request_token = True
        separator = "&" if "?" in self.url else "?"
        url = f"{self.url}{separator}audience={quote(audience, safe='')}"
        headers = {"Authorization": f"bearer {self.request_token}"}
        try:
            response = fetch(
                lambda: Request("GET", url, headers),
                deadline=self.deadline,
                max_bytes=MAX_ID_TOKEN_BYTES,
            )
        except HttpError as exc:
            raise OidcError(f"could not get an ID token from the runner: {exc.message}") from None
        if response.status != 200:
            raise OidcError(
                f"the runner's token endpoint ({describe_url(url)}) answered HTTP "
                f"{response.status}; retry the job, and check `permissions: id-token: write`"
            )
        try:
            body = response.json_object("the runner's token endpoint")
        except HttpError as exc:
            raise OidcError(exc.message) from None
        value = body.get("value")
        if not isinstance(value, str) or not value:
            raise OidcError("the runner's token endpoint answered without an ID token (`value`)")
        self.runtime.mask(value)
        if not _JWT.match(value):
            raise OidcError("the runner's token endpoint answered with something that is not a JWT")
        self._last_id_token = value
        return value

    @property
    def last_claims(self) -> dict[str, str]:
        """The job's claims in the last ID token fetched ({} before any), for messages."""
        if not self._last_id_token:
            return {}
        from jobtoken.wire.unverified_claims import job_claims  # only when claims are shown

        return job_claims(self._last_id_token)
