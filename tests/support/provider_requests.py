"""Provider requests as the action builds them, for the provider tests."""

from __future__ import annotations

from jobtoken.action.deadline import Deadline
from jobtoken.action.inputs import InputReader, read_exchange_inputs
from jobtoken.action.provider import ExchangeRequest, RevokeRequest
from support.oidc_issuer import FakeOidcIssuer


def exchange_request(
    issuer: FakeOidcIssuer, provider: str, audiences: list[str] | None = None, **inputs: str
) -> ExchangeRequest:
    """An ExchangeRequest as the action builds it, from `input_name=value` pairs."""
    env = {"INPUT_PROVIDER": provider}
    env.update({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    reader = InputReader(env)

    def id_token(audience: str) -> str:
        if audiences is not None:
            audiences.append(audience)
        return issuer.mint(audience=audience)

    return ExchangeRequest(
        inputs=read_exchange_inputs(reader),
        provider_inputs=reader,
        id_token=id_token,
        deadline=Deadline(20),
    )


def revoke_request(
    issuer: FakeOidcIssuer, state: dict[str, str], token: str | None = None, **inputs: str
) -> RevokeRequest:
    reader = InputReader({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    return RevokeRequest(
        token=token,
        token_id=None,
        state=state,
        broker_url=None,
        audience=None,
        provider_inputs=reader,
        id_token=lambda audience: issuer.mint(audience=audience),
        deadline=Deadline(20),
    )
