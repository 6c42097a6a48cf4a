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
   ``make_request`` closure that calls it to `jobtoken.action.http.fetch`.
3. Talk HTTP only through `jobtoken.action.http` (`fetch`, `send`), always
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
from dataclasses import dataclass, field

from jobtoken.action.deadline import Deadline
from jobtoken.action.errors import InputError
from jobtoken.action.inputs import ExchangeInputs, InputReader

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


@dataclass(frozen=True)
class ExchangeRequest:
    #: the validated common inputs (provider, connector, scopes, ttl, audience, …)
    inputs: ExchangeInputs
    #: read your provider-specific inputs with it (validated, before any network call)
    provider_inputs: InputReader
    id_token: IdTokenSource
    deadline: Deadline


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    #: as the provider said it (RFC 6749 `token_type`), e.g. "Bearer"
    token_type: str
    #: lifetime in seconds from now as the provider said it; None: no expiry
    expires_in: int | None
    #: granted scopes; None: the provider did not say (means: exactly the requested ones)
    scopes: tuple[str, ...] | None
    #: non-secret identifier of the token, for logs, the summary and revocation by id
    token_id: str
    #: RFC 8693 `issued_token_type`, if the provider has one
    issued_token_type: str | None = None
    #: other secrets in the response the action must mask (e.g. a Vault client token)
    extra_secrets: tuple[str, ...] = ()
    #: what `revoke` needs besides the token (e.g. a lease id), short strings only;
    #: the action passes it to the revoke action inside the masked `revoke-handle` output
    revoke_state: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RevokeRequest:
    #: the issued token, when the workflow passed it (or the exchange is revoking it)
    token: str | None
    token_id: str | None
    #: the `revoke_state` the exchange returned; empty when none was passed
    state: Mapping[str, str]
    broker_url: str | None
    audience: str | None
    provider_inputs: InputReader
    id_token: IdTokenSource
    deadline: Deadline


@dataclass(frozen=True)
class Provider:
    name: str
    exchange: Callable[[ExchangeRequest], IssuedToken]
    revoke: Callable[[RevokeRequest], str]
    #: required `token_type` (case-insensitive); None: not checked
    token_type: str | None = "Bearer"  # noqa: S105 -- a token type, not a secret
    #: the accepted `issued_token_type` values; None: not checked
    issued_token_types: frozenset[str] | None = None


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
