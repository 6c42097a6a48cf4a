"""The revoke action: revoke what the exchange action issued, at teardown.

Given the exchange step's `token` (RFC 7009 revocation by possession), or its
`token-id` (the broker checks a fresh ID token of the same job), plus its
`revoke-handle` for providers that need more (e.g. a Vault lease). Nothing to
revoke (the exchange step failed and wrote no output) is a notice, not an
error. A failed revocation is a warning, or an error with `fail-on-error: true`.

Public API: `run_revoke(env, out) -> int`, `decode_revoke_handle(handle, provider)`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from jobtoken.action.deadline import Deadline
from jobtoken.action.errors import ActionError, InputError
from jobtoken.action.exchange import REVOKE_HANDLE_PREFIX
from jobtoken.action.inputs import InputReader, read_revoke_inputs
from jobtoken.action.oidc import RunnerIdTokens
from jobtoken.action.provider import RevokeRequest, load
from jobtoken.action.runtime import Runtime
from jobtoken.wire.strict_json import loads_strict

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs ≈5 ms per run
if TYPE_CHECKING:
    from typing import TextIO

__all__ = ["MAX_HANDLE_LENGTH", "decode_revoke_handle", "run_revoke"]

MAX_HANDLE_LENGTH = 8192


def run_revoke(env: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    """Run the revoke action; 0 unless revocation failed and fail-on-error is set."""
    env = os.environ if env is None else env
    runtime = Runtime(env, out if out is not None else sys.stdout)
    reader = InputReader(env)
    fail_on_error = reader.raw("fail-on-error").lower() == "true"
    try:
        if reader.raw("token"):
            runtime.mask(reader.raw("token"))
        if reader.raw("revoke-handle"):
            runtime.mask(reader.raw("revoke-handle"))
        inputs = read_revoke_inputs(reader)
        if not (inputs.token or inputs.token_id or inputs.revoke_handle):
            runtime.notice(_nothing_given(inputs.provider), title="jobtoken revoke")
            return 0
        state = decode_revoke_handle(inputs.revoke_handle, inputs.provider)
        provider = load(inputs.provider)
        deadline = Deadline(inputs.timeout)
        id_tokens = RunnerIdTokens(env, runtime, deadline)
        if inputs.token is None and inputs.provider == "broker":
            id_tokens.check_available()  # revocation by id proves the job with an ID token
        done = provider.revoke(
            RevokeRequest(
                token=inputs.token,
                token_id=inputs.token_id,
                state=state,
                broker_url=inputs.broker_url,
                audience=inputs.audience,
                provider_inputs=reader,
                id_token=id_tokens.fetch,
                deadline=deadline,
            )
        )
    except ActionError as exc:
        return _failed(runtime, exc.message, fail_on_error)
    except Exception as exc:  # never print the exception text: it may hold a secret
        return _failed(runtime, f"internal error ({type(exc).__name__})", fail_on_error)
    if done.startswith(NOTHING_TO_REVOKE):
        # The cloud cannot revoke one session: say so where people look (a
        # notice in the run's annotations); the README explains the expiry bound.
        runtime.notice(done, title="jobtoken revoke")
    else:
        runtime.info(f"jobtoken revoke: {done}")
    return 0


#: how a provider's revoke() sentence starts when there was nothing it could revoke
NOTHING_TO_REVOKE = "nothing to revoke"


def decode_revoke_handle(handle: str | None, provider: str) -> dict[str, str]:
    """The revoke state inside a `revoke-handle` output; {} for none."""
    if not handle:
        return {}
    bad = InputError("revoke-handle", "is not the revoke-handle output of the exchange step")
    if len(handle) > MAX_HANDLE_LENGTH or not handle.startswith(REVOKE_HANDLE_PREFIX):
        raise bad
    data = handle[len(REVOKE_HANDLE_PREFIX) :]
    import base64  # only providers with revoke state pay for it

    try:
        document = loads_strict(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    except ValueError:
        raise bad from None
    if not isinstance(document, dict) or not isinstance(document.get("state"), dict):
        raise bad
    state = document["state"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in state.items()):
        raise bad
    if document.get("provider") != provider:
        raise InputError(
            "revoke-handle", f"comes from another provider than {provider}: set `provider`"
        )
    return dict(state)


def _nothing_given(provider: str) -> str:
    """Which inputs are empty, and what to pass instead."""
    empty = (
        "the `token` and `token-id` inputs are both empty"
        if provider == "broker"
        else "the `token`, `token-id` and `revoke-handle` inputs are all empty"
    )
    return (
        f"nothing to revoke: {empty}. Pass `token: ${{{{ steps.ID.outputs.token }}}}` "
        "(or `token-id: ${{ steps.ID.outputs.token-id }}`), where ID is the id of the "
        "exchange step; an output is empty when that step failed or was skipped, or when "
        "ID names another step"
    )


def _failed(runtime: Runtime, message: str, fail_on_error: bool) -> int:
    if fail_on_error:
        runtime.error(message, title="jobtoken revoke: failed")
        return 1
    runtime.warning(
        f"{message} (the token still expires on its own; set fail-on-error: true to fail)",
        title="jobtoken revoke: failed",
    )
    return 0
