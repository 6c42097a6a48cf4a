"""Providers: where the action trades the job's OIDC ID token for a token or secret.

The contract a provider module keeps
====================================

A provider is one module in this package, registered by name in `PROVIDERS`
below, that defines a module-level ``PROVIDER = Provider(...)``. It is imported
only when the user picks it (`provider:` input), so a provider may not exist
yet without breaking the others. Standard library only, Python 3.10 syntax.

``exchange(request: ExchangeRequest) -> IssuedToken``

1. Read and validate the provider's own inputs from ``request.provider_inputs``
   (an `InputReader`: ``.url("vault-url", required=True)``, ``.text(...)``,
   ``.duration(...)``, ``.boolean(...)``) BEFORE any network call; a bad input
   raises `InputError` (the reader does it for you).
2. Get an ID token with ``request.id_token(audience)``: it returns a fresh,
   already masked token of the runner for `audience`. Use
   ``request.inputs.audience`` when the user set one, else your provider's
   documented default. Call it again for every retry of a request that
   carries it (brokers and clouds accept each `jti` once): pass a
   ``make_request`` closure that calls it to `jobtoken.action.http.client.fetch`.
3. Talk HTTP only through `jobtoken.action.http.client` (`fetch`, `send`), always
   with ``deadline=request.deadline``.
4. Return an `IssuedToken`. Print nothing: the action masks the access token,
   ``extra_secrets`` and their encoded forms before it writes any line, runs
   the fail-closed checks (`jobtoken.action.checks`), writes the outputs.
5. Fail by raising: `ProviderError(message, denied=True)` when the provider
   answered but refused (the action then prints the ID token's non-secret
   claims so the author sees why no rule matched); `ProviderError(message)`
   for anything else unusable. Text from the server is untrusted: pass it
   through `jobtoken.action.runtime.neutralize` before putting it in a
   message, and never put a secret (token, credential, ID token) in one.
   `HttpError` from the client may propagate as is.

``revoke(request: RevokeRequest) -> str``

Revoke what `exchange` issued, given the token (and/or its token id) and the
``revoke_state`` the exchange returned (the revoke action gets it back from
the exchange step's masked `revoke-handle` output). Return one short,
non-secret sentence saying what was done (e.g. "revoked the Vault token", or
"nothing to revoke: AWS secrets are not issued per job"). Raise
`ProviderError`/`HttpError` on failure. "Already expired / unknown" is success.
The action also calls it, best effort, on a token that failed a check.

Fields of `IssuedToken` the checks look at: ``access_token`` (present,
printable, no whitespace, bounded length), ``token_type`` (must equal the
provider's ``token_type`` case-insensitively when that is set),
``issued_token_type`` (one of the provider's ``issued_token_types`` when set), ``expires_in``
(positive integer seconds, within min(ttl, max-ttl); ``None`` means no expiry
and fails unless the user set ``allow-no-expiry: true``), ``scopes`` (granted
⊆ requested ⊆ allowed-scopes; ``None`` means exactly the requested set).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from jobtoken.action.deadline import Deadline
from jobtoken.action.errors import InputError
from jobtoken.action.inputs import ExchangeInputs, InputReader

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs ≈5 ms per run
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "PROVIDERS",
    "ExchangeRequest",
    "IdTokenSource",
    "IssuedToken",
    "Provider",
    "RevokeRequest",
    "load",
]

#: `provider:` input -> module defining PROVIDER
PROVIDERS: dict[str, str] = {
    "broker": "jobtoken.action.providers.broker",
    "vault": "jobtoken.action.providers.vault",
    "aws-secrets-manager": "jobtoken.action.providers.aws",
    "gcp-secret-manager": "jobtoken.action.providers.gcp",
    "azure-key-vault": "jobtoken.action.providers.azure",
}

#: id_token(audience) -> a fresh ID token from the runner, already masked
IdTokenSource = Callable[[str], str]


class ExchangeRequest:
    """What `exchange` receives (immutable)."""

    __slots__ = ("deadline", "id_token", "inputs", "provider_inputs")

    def __init__(
        self,
        inputs: ExchangeInputs,
        provider_inputs: InputReader,
        id_token: IdTokenSource,
        deadline: Deadline,
    ) -> None:
        #: the validated common inputs (provider, connector, scopes, ttl, audience, …)
        self.inputs: Final = inputs
        #: read your provider-specific inputs with it (validated, before any network call)
        self.provider_inputs: Final = provider_inputs
        self.id_token: Final = id_token
        self.deadline: Final = deadline


class IssuedToken:
    """What `exchange` returns (immutable)."""

    __slots__ = (
        "access_token",
        "expires_in",
        "extra_secrets",
        "issued_token_type",
        "revoke_state",
        "scopes",
        "token_id",
        "token_type",
        "ttl_limited_by",
        "upstream_revoked_at_job_end",
    )

    def __init__(
        self,
        access_token: str,
        token_type: str,
        expires_in: int | None,
        scopes: tuple[str, ...] | None,
        token_id: str,
        issued_token_type: str | None = None,
        extra_secrets: tuple[str, ...] = (),
        revoke_state: Mapping[str, str] | None = None,
        upstream_revoked_at_job_end: bool = False,
        ttl_limited_by: str = "",
    ) -> None:
        self.access_token: Final = access_token
        #: as the provider said it (RFC 6749 `token_type`), e.g. "Bearer"
        self.token_type: Final = token_type
        #: lifetime in seconds from now as the provider said it; None: no expiry
        self.expires_in: Final = expires_in
        #: granted scopes; None: the provider did not say (means: exactly the requested ones)
        self.scopes: Final = scopes
        #: non-secret identifier of the token, for logs, the summary and revocation by id
        self.token_id: Final = token_id
        #: RFC 8693 `issued_token_type`, if the provider has one
        self.issued_token_type: Final = issued_token_type
        #: other secrets in the response the action must mask (e.g. a Vault client token)
        self.extra_secrets: Final = extra_secrets
        #: what `revoke` needs besides the token (e.g. a lease id), short strings only;
        #: the action passes it to the revoke action inside the masked `revoke-handle` output
        self.revoke_state: Final[Mapping[str, str]] = {} if revoke_state is None else revoke_state
        #: the broker said it revokes this upstream token upstream when the job's ends
        self.upstream_revoked_at_job_end: Final = upstream_revoked_at_job_end
        #: the broker said which limit made the token shorter than asked (a key of
        #: `jobtoken.wire.oauth_terms.TTL_LIMITS`); "" when it did not say
        self.ttl_limited_by: Final = ttl_limited_by


class RevokeRequest:
    """What `revoke` receives (immutable)."""

    __slots__ = (
        "audience",
        "broker_url",
        "deadline",
        "id_token",
        "provider_inputs",
        "state",
        "token",
        "token_id",
    )

    def __init__(
        self,
        token: str | None,
        token_id: str | None,
        state: Mapping[str, str],
        broker_url: str | None,
        audience: str | None,
        provider_inputs: InputReader,
        id_token: IdTokenSource,
        deadline: Deadline,
    ) -> None:
        #: the issued token, when the workflow passed it (or the exchange is revoking it)
        self.token: Final = token
        self.token_id: Final = token_id
        #: the `revoke_state` the exchange returned; empty when none was passed
        self.state: Final = state
        self.broker_url: Final = broker_url
        self.audience: Final = audience
        self.provider_inputs: Final = provider_inputs
        self.id_token: Final = id_token
        self.deadline: Final = deadline


class Provider:
    """A provider module's `PROVIDER` (immutable)."""

    __slots__ = ("exchange", "issued_token_types", "name", "revoke", "token_type")

    def __init__(
        self,
        name: str,
        exchange: Callable[[ExchangeRequest], IssuedToken],
        revoke: Callable[[RevokeRequest], str],
        token_type: str | None = "Bearer",  # noqa: S107 -- a token type, not a secret
        issued_token_types: frozenset[str] | None = None,
    ) -> None:
        self.name: Final = name
        self.exchange: Final = exchange
        self.revoke: Final = revoke
        #: required `token_type` (case-insensitive); None: not checked
        self.token_type: Final = token_type
        #: the accepted `issued_token_type` values; None: not checked
        self.issued_token_types: Final = issued_token_types


def load(name: str) -> Provider:
    """The provider called `name`; an unknown name is an `InputError` on `provider`."""
    module_name = PROVIDERS.get(name)
    if module_name is None:
        raise InputError("provider", f"unknown provider {name}: use one of {', '.join(PROVIDERS)}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise InputError(
            "provider", f"the provider {name} is not available in this version of the action"
        ) from None
    provider = getattr(module, "PROVIDER", None)
    if not isinstance(provider, Provider):
        raise InputError("provider", f"the provider {name} is not available (no PROVIDER)")
    return provider
