"""The exchange action, top to bottom.

1. inputs validated (no network yet); the provider module loaded
2. the runner offers an ID token (else: what permission to add)
3. provider.exchange(): ID token -> token
4. mask the token and every other secret, before anything else is written
5. fail-closed checks; on failure: revoke the token (best effort), write no output
6. outputs (random heredoc delimiter), optional GITHUB_ENV export, job summary

Public API: `run_exchange(env, out, clock) -> int` (the exit code).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping

from jobtoken.action.checks import Expectations, check_issued_token
from jobtoken.action.deadline import Deadline
from jobtoken.action.errors import ActionError, ProviderError
from jobtoken.action.inputs import ExchangeInputs, InputReader, read_exchange_inputs
from jobtoken.action.oidc import RunnerIdTokens
from jobtoken.action.provider import (
    ExchangeRequest,
    IssuedToken,
    Provider,
    RevokeRequest,
    load,
)
from jobtoken.action.runtime import Runtime, markdown_cell
from jobtoken.wire.grammar import format_duration
from jobtoken.wire.oauth_terms import ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, TTL_LIMITS

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs ≈5 ms per run
if TYPE_CHECKING:
    from typing import TextIO

__all__ = ["REVOKE_HANDLE_PREFIX", "encode_revoke_handle", "run_exchange"]

REVOKE_HANDLE_PREFIX = "jt1."
#: time given to revoking a rejected token, even when the step's timeout is spent
REVOKE_REJECTED_SECONDS = 10
#: how much shorter than the requested ttl a token may be before it counts as capped
TTL_CAP_SLACK_SECONDS = 5


def run_exchange(
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Run the exchange action; 0 when the outputs were written."""
    env = os.environ if env is None else env
    runtime = Runtime(env, out if out is not None else sys.stdout)
    id_tokens: RunnerIdTokens | None = None
    try:
        reader = InputReader(env)
        inputs = read_exchange_inputs(reader)
        provider = load(inputs.provider)
        deadline = Deadline(inputs.timeout)
        id_tokens = RunnerIdTokens(env, runtime, deadline)
        id_tokens.check_available()
        issued = provider.exchange(ExchangeRequest(inputs, reader, id_tokens.fetch, deadline))
        received_at = clock()
        _mask(runtime, issued)
        failures = check_issued_token(issued, expectations(inputs, provider))
        if failures:
            _reject(runtime, provider, inputs, reader, id_tokens, issued, failures)
            return 1
        _write_results(runtime, provider, inputs, issued, received_at)
        return 0
    except ActionError as exc:
        runtime.error(exc.message, title=exc.title)
        if isinstance(exc, ProviderError) and exc.denied:
            _print_claims(runtime, id_tokens, exc)
        return 1
    except Exception as exc:  # never print the exception text: it may hold a secret
        runtime.error(
            f"internal error ({type(exc).__name__}); no output was written. "
            "Please report it with the action version.",
            title="jobtoken: internal error",
        )
        return 1


def expectations(inputs: ExchangeInputs, provider: Provider) -> Expectations:
    return Expectations(
        requested_scopes=inputs.scopes,
        allowed_scopes=inputs.allowed_scopes,
        lifetime_cap=inputs.lifetime_cap,
        min_remaining=inputs.min_remaining,
        token_type=provider.token_type,
        issued_token_types=provider.issued_token_types,
        allow_no_expiry=inputs.allow_no_expiry,
    )


def encode_revoke_handle(provider: str, state: Mapping[str, str]) -> str:
    """The `revoke-handle` output: provider + revoke state, opaque (and masked)."""
    if not state:
        return ""
    import base64  # only providers with revoke state pay for it

    document = json.dumps({"provider": provider, "state": dict(state)}, separators=(",", ":"))
    return REVOKE_HANDLE_PREFIX + base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def _mask(runtime: Runtime, issued: IssuedToken) -> None:
    for secret in (issued.access_token, *issued.extra_secrets):
        if secret:
            runtime.mask(secret)


def _reject(
    runtime: Runtime,
    provider: Provider,
    inputs: ExchangeInputs,
    reader: InputReader,
    id_tokens: RunnerIdTokens,
    issued: IssuedToken,
    failures: list[str],
) -> None:
    for reason in failures:
        runtime.error(reason, title="jobtoken: token rejected")
    request = RevokeRequest(
        token=issued.access_token or None,
        token_id=issued.token_id,
        state=issued.revoke_state,
        broker_url=inputs.broker_url,
        audience=inputs.audience,
        provider_inputs=reader,
        id_token=id_tokens.fetch,
        deadline=Deadline(REVOKE_REJECTED_SECONDS),
    )
    try:
        done = provider.revoke(request)
    except ActionError as exc:
        runtime.warning(f"could not revoke the rejected token: {exc.message}")
    else:
        runtime.info(f"jobtoken: rejected token: {done}")
    runtime.error(
        f"the {provider.name} provider issued a token that failed the checks above; it was "
        "revoked and no output was written",
        title="jobtoken: token rejected",
    )


def _write_results(
    runtime: Runtime,
    provider: Provider,
    inputs: ExchangeInputs,
    issued: IssuedToken,
    received_at: float,
) -> None:
    granted = issued.scopes if issued.scopes is not None else inputs.scopes
    expires_at = ""
    if issued.expires_in is not None:
        moment = time.gmtime(received_at + issued.expires_in)
        expires_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)
    handle = encode_revoke_handle(provider.name, issued.revoke_state)
    if handle:
        runtime.mask(handle)
    runtime.set_outputs(
        [
            ("token", issued.access_token),
            ("token-id", issued.token_id),
            ("expires-at", expires_at),
            ("scopes", " ".join(granted)),
            ("revoke-handle", handle),
        ]
    )
    if inputs.export_env:
        runtime.export_env(inputs.export_env, issued.access_token)
    what = inputs.connector or provider.name
    runtime.info(
        f"jobtoken: {what} token {issued.token_id} from {provider.name}, "
        f"scopes: {' '.join(granted) or '(none)'}, expires at {expires_at or '(no expiry)'}"
    )
    # a few seconds go to the round trip; anything shorter was capped by the provider
    if issued.expires_in is not None and issued.expires_in < inputs.ttl - TTL_CAP_SLACK_SECONDS:
        runtime.notice(
            ttl_capped_note(provider.name, inputs.ttl, issued.expires_in, issued.ttl_limited_by),
            title="jobtoken: ttl capped",
        )
    if inputs.summary:
        rows = [
            ("provider", provider.name),
            ("connector", inputs.connector or "-"),
            ("scopes", " ".join(granted) or "-"),
            ("expires at", expires_at or "no expiry: a long-lived token (allow-no-expiry)"),
            ("token id", issued.token_id),
            ("at job end", job_end_note(provider.name, issued)),
        ]
        table = "".join(f"| {name} | {markdown_cell(value)} |\n" for name, value in rows)
        runtime.append_summary(f"### jobtoken\n\n| | |\n|---|---|\n{table}\n")


#: where a job-end revocation reaches the token (docs/security.md), by provider and type
JOB_END_NOTES = {
    ("broker", JWT_TOKEN_TYPE): (
        "refused at the broker (/proxy, /introspect) once the job ends; an API that verifies "
        "this JWT offline through the JWKS cannot learn of that: only its expiry bounds it there"
    ),
    ("broker", ACCESS_TOKEN_TYPE): (
        "the broker's lease record ends with the job; the upstream credential it carries "
        "is not revoked upstream: its own lifetime bounds it"
    ),
}
OTHER_JOB_END_NOTE = "not revoked by a broker at job end: the revoke step and its expiry bound it"
UPSTREAM_REVOKED_NOTE = (
    "revoked at its upstream (e.g. GitHub) when this job's lease is revoked: by the revoke "
    "step, or by the broker when the job ends"
)


def ttl_capped_note(provider: str, requested: int, granted: int, limited_by: str = "") -> str:
    """The notice for a token that lives shorter than the `ttl` asked for; `limited_by`
    is the broker's `ttl_limited_by` (which limit applied), "" when it did not say."""
    if provider == "broker" and limited_by in TTL_LIMITS:
        cause = f"the limit that applied: {TTL_LIMITS[limited_by]}"
    elif provider == "broker":
        cause = (
            "a maximum on the broker is lower: the repository admins' policy (max_ttl), "
            "the connector's or the broker's own"
        )
    else:
        cause = f"the {provider} provider's maximum is lower"
    return (
        f"ttl capped: requested {format_duration(requested)}, granted "
        f"{format_duration(granted)} ({cause}). Set ttl to {format_duration(granted)} or "
        "less to ask for what the job gets"
    )


def job_end_note(provider: str, issued: IssuedToken) -> str:
    if issued.upstream_revoked_at_job_end and provider == "broker":
        return UPSTREAM_REVOKED_NOTE
    key = (provider, issued.issued_token_type or "")
    return JOB_END_NOTES.get(key, OTHER_JOB_END_NOTE)


def _print_claims(runtime: Runtime, id_tokens: RunnerIdTokens | None, exc: ProviderError) -> None:
    claims = id_tokens.last_claims if id_tokens else {}
    lines = {**claims, **exc.details}
    if not lines:
        return
    runtime.group(
        "jobtoken: the job's ID token claims the provider's policy saw",
        [f"{name}: {value}" for name, value in lines.items()],
    )
