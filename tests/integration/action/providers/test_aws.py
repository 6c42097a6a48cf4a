"""`provider: aws-secrets-manager` against moto's server with SigV4 and IAM checks on."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

import pytest

from jobtoken.action.errors import ProviderError
from jobtoken.action.provider import ExchangeRequest
from jobtoken.action.providers.aws import default_endpoint, exchange, revoke, session_name
from jobtoken.action.providers.sigv4 import AwsCredentials, sign
from support.aws_server import MotoServer
from support.oidc_issuer import FakeOidcIssuer
from support.provider_requests import exchange_request, revoke_request

UTC = datetime.timezone.utc


def _in(seconds: int) -> str:
    return (datetime.datetime.now(UTC) + datetime.timedelta(seconds=seconds)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


@dataclass
class World:
    url: str
    reader_role: str
    describer_role: str
    nothing_role: str


@pytest.fixture(scope="module")
def world(moto: MotoServer) -> World:
    """Roles and secrets created before moto starts checking signatures and IAM."""
    reader = moto.create_role("gh-reader", allowed_actions=["secretsmanager:GetSecretValue"])
    describer = moto.create_role(
        "gh-describer",
        allowed_actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
    )
    nothing = moto.create_role("gh-nothing", allowed_actions=["s3:GetObject"])
    moto.create_secret(
        "connectors/hubspot",
        json.dumps({"token": "pat-aws-hubspot", "scopes": ["crm.read"], "expires_at": _in(600)}),
    )
    moto.create_secret(
        "connectors/slack",
        "xoxb-aws-slack",
        tags={"jobtoken-scopes": "chat:write", "jobtoken-expires-at": _in(300), "team": "x"},
    )
    moto.create_secret(
        "connectors/staged",
        json.dumps({"token": "old-token", "scopes": "a", "expires_at": _in(600)}),
    )
    moto.put_secret_value(
        "connectors/staged",
        json.dumps({"token": "next-token", "scopes": "a", "expires_at": _in(600)}),
        stages=["NEXT"],
    )
    return World(moto.url, reader, describer, nothing)


@pytest.fixture(autouse=True)
def checked(moto: MotoServer, world: World) -> None:
    """Each test: the STS call (unsigned, as on AWS) passes; every later request is checked."""
    moto.enforce_auth(unchecked=1)


def _request(
    issuer: FakeOidcIssuer, world: World, secret: str, role: str | None = None, **more: str
) -> ExchangeRequest:
    inputs = {
        "aws_role_arn": role or world.reader_role,
        "aws_region": "us-east-1",
        "aws_secret_id": secret,
        "aws_endpoint_url": world.url,
        "aws_sts_endpoint_url": world.url,
        "scopes": "crm.read",
        **more,
    }
    return exchange_request(issuer, "aws-secrets-manager", **inputs)


def test_json_document_needs_only_get_secret_value(
    module_issuer: FakeOidcIssuer, world: World
) -> None:
    audiences: list[str] = []
    request = _request(module_issuer, world, "connectors/hubspot")
    request = ExchangeRequest(
        inputs=request.inputs,
        provider_inputs=request.provider_inputs,
        id_token=lambda aud: audiences.append(aud) or module_issuer.mint(audience=aud),
        deadline=request.deadline,
    )
    issued = exchange(request)
    assert issued.access_token == "pat-aws-hubspot"
    assert issued.scopes == ("crm.read",)
    assert issued.expires_in is not None
    assert 590 <= issued.expires_in <= 600
    assert audiences == ["sts.amazonaws.com"]
    # the temporary credentials are handed over for masking, and only for that
    assert len(issued.extra_secrets) == 2
    assert issued.revoke_state == {}


def test_plain_string_reads_tags_with_describe_secret(
    module_issuer: FakeOidcIssuer, world: World
) -> None:
    issued = exchange(_request(module_issuer, world, "connectors/slack", role=world.describer_role))
    assert issued.access_token == "xoxb-aws-slack"
    assert issued.scopes == ("chat:write",)
    assert issued.expires_in is not None
    assert 290 <= issued.expires_in <= 300


def test_plain_string_without_describe_permission_says_which_permission(
    module_issuer: FakeOidcIssuer, world: World
) -> None:
    with pytest.raises(ProviderError, match="needs secretsmanager:DescribeSecret") as caught:
        exchange(_request(module_issuer, world, "connectors/slack"))
    assert "xoxb" not in caught.value.message


def test_version_stage_is_sent(module_issuer: FakeOidcIssuer, world: World) -> None:
    issued = exchange(_request(module_issuer, world, "connectors/staged", aws_version_stage="NEXT"))
    assert issued.access_token == "next-token"


def test_missing_permission_names_the_action_and_role(
    module_issuer: FakeOidcIssuer, world: World
) -> None:
    with pytest.raises(ProviderError) as caught:
        exchange(_request(module_issuer, world, "connectors/hubspot", role=world.nothing_role))
    assert caught.value.denied
    assert (
        "may not call secretsmanager:GetSecretValue on connectors/hubspot" in caught.value.message
    )
    assert "gh-nothing" in caught.value.message


def test_unknown_secret_names_secret_and_region(
    module_issuer: FakeOidcIssuer, world: World
) -> None:
    with pytest.raises(ProviderError, match="no secret connectors/nope in us-east-1"):
        exchange(_request(module_issuer, world, "connectors/nope"))


def test_wrong_region_says_to_check_the_region(module_issuer: FakeOidcIssuer, world: World) -> None:
    with pytest.raises(ProviderError, match="no secret connectors/hubspot in eu-west-1: check"):
        exchange(_request(module_issuer, world, "connectors/hubspot", aws_region="eu-west-1"))


def test_a_wrong_signature_is_refused_by_moto(
    module_issuer: FakeOidcIssuer, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proof that moto checks signatures, so the passing tests prove ours right."""
    import jobtoken.action.providers.aws as aws

    def bad_sign(**kwargs: Any) -> dict[str, str]:
        creds = kwargs["credentials"]
        kwargs["credentials"] = AwsCredentials(creds.access_key_id, "x" * 40, creds.session_token)
        return sign(**kwargs)

    monkeypatch.setattr(aws, "sign", bad_sign)
    with pytest.raises(ProviderError, match="did not accept the signed request") as caught:
        exchange(_request(module_issuer, world, "connectors/hubspot"))
    assert "SignatureDoesNotMatch" in caught.value.message


STS_ERROR = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    "<Code>{code}</Code><Message>{message}</Message></Error>"
    "<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
)


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            "token.actions.githubusercontent.com:sub must match "
            "'repo:octo-org/octo-repo:ref:refs/heads/main'",
        ),
        (
            "InvalidIdentityToken",
            "Incorrect token audience",
            "does not list the audience 'sts.amazonaws.com'",
        ),
        (
            "InvalidIdentityToken",
            "No OpenID Connect provider found in your account for https://token.actions.githubusercontent.com",
            "has no IAM OIDC identity provider",
        ),
        (
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            "longer than the MaxSessionDuration",
        ),
    ],
)
def test_sts_refusals_name_the_cause_and_claims(
    module_issuer: FakeOidcIssuer, code: str, message: str, expected: str
) -> None:
    """STS's documented error shape (moto does not check web identities, so no server here)."""
    from jobtoken.action.http.client import Response
    from jobtoken.action.providers.aws import _sts_error
    from jobtoken.wire.unverified_claims import job_claims

    answer = Response(
        400, {}, STS_ERROR.format(code=code, message=message).encode(), "https://sts/"
    )
    claims = job_claims(module_issuer.mint(audience="sts.amazonaws.com"))
    error = _sts_error(
        answer, role_arn="arn:aws:iam::1:role/r", audience="sts.amazonaws.com", claims=claims
    )
    assert expected in error.message
    assert code in error.message


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("aws_role_arn", "role/x", "aws-role-arn"),
        ("aws_region", "mars", "aws-region"),
        ("aws_secret_id", "a b", "aws-secret-id"),
        ("aws_endpoint_url", "http://example.com", "aws-endpoint-url"),
    ],
)
def test_inputs_are_validated_before_any_call(
    module_issuer: FakeOidcIssuer, world: World, name: str, value: str, message: str
) -> None:
    from jobtoken.action.errors import InputError

    request = _request(module_issuer, world, "connectors/hubspot", **{name: value})
    before = len(module_issuer.requests) if hasattr(module_issuer, "requests") else 0
    with pytest.raises(InputError, match=message):
        exchange(request)
    after = len(module_issuer.requests) if hasattr(module_issuer, "requests") else 0
    assert after == before


def test_revoke_says_aws_cannot_revoke_a_session(module_issuer: FakeOidcIssuer) -> None:
    assert revoke(revoke_request(module_issuer, {})).startswith(
        "nothing to revoke: AWS cannot revoke"
    )


def test_session_name_and_endpoints() -> None:
    assert session_name({"GITHUB_RUN_ID": "12345", "GITHUB_RUN_ATTEMPT": "2"}) == "jobtoken-12345-2"
    assert session_name({"GITHUB_RUN_ID": "1;rm -rf"}) == "jobtoken-1rm-rf"
    assert session_name({}) == "jobtoken"
    assert default_endpoint("sts", "cn-north-1") == "https://sts.cn-north-1.amazonaws.com.cn"
    assert (
        default_endpoint("secretsmanager", "us-gov-west-1")
        == "https://secretsmanager.us-gov-west-1.amazonaws.com"
    )
