"""`provider: aws-secrets-manager` — AWS Secrets Manager through a role the job assumes.

Exchange, top to bottom:

1. inputs: ``aws-role-arn``, ``aws-region``, ``aws-secret-id`` (name or ARN),
   ``aws-version-stage`` (optional), ``aws-endpoint-url`` / ``aws-sts-endpoint-url``
   (tests, VPC endpoints; the default endpoints follow the region's partition);
2. STS ``AssumeRoleWithWebIdentity`` (unsigned: the ID token is the credential;
   audience: the ``audience`` input, default ``sts.amazonaws.com``) with a session
   name from the run (``jobtoken-<run id>-<attempt>``) and ``DurationSeconds`` =
   the ttl, at least 900 (STS's minimum);
3. Secrets Manager ``GetSecretValue``, SigV4-signed (``sigv4.py``) with the
   temporary credentials;
4. a plain-string secret takes its scopes and expiry from
   the secret's tags ``jobtoken-scopes`` / ``jobtoken-expires-at`` through
   ``DescribeSecret`` — the only case that needs ``secretsmanager:DescribeSecret``
   (GetSecretValue does not return tags). A JSON document with both needs only
   ``secretsmanager:GetSecretValue``.

The temporary credentials are masked, used for one or two requests, and never
written anywhere. AWS cannot revoke one role session: revoke says so.

References: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html,
https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from typing import Any

from jobtoken.action.errors import ProviderError
from jobtoken.action.http.client import Request, Response, fetch, form_request
from jobtoken.action.provider import ExchangeRequest, IssuedToken, Provider, RevokeRequest
from jobtoken.action.providers.secret_document import (
    SecretMetadata,
    metadata_from_mapping,
    read_connector_secret,
    to_issued_token,
)
from jobtoken.action.providers.sigv4 import AwsCredentials, sign
from jobtoken.wire.strict_json import loads_strict
from jobtoken.wire.text import neutralize
from jobtoken.wire.unverified_claims import job_claims

__all__ = ["PROVIDER", "default_endpoint", "session_name"]

DEFAULT_AUDIENCE = "sts.amazonaws.com"
MIN_DURATION = 900
MAX_DURATION = 43200
_ROLE_ARN = re.compile(
    r"^arn:aws(-cn|-us-gov|-iso[a-z-]{0,8})?:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}\Z"
)
_REGION = re.compile(r"^[a-z]{2}(-[a-z]{1,12}){1,3}-[0-9]{1,2}\Z")
_SECRET_ID = re.compile(r"^[A-Za-z0-9/_+=.@:!-]{1,2048}\Z")
_STAGE = re.compile(r"^[A-Za-z0-9_.+=@-]{1,256}\Z")
_SESSION_CHARS = re.compile(r"[^\w+=,.@-]")
_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}\Z")
_UNSAFE_XML = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def exchange(request: ExchangeRequest) -> IssuedToken:
    inputs = request.provider_inputs
    role_arn = inputs.text(
        "aws-role-arn",
        pattern=_ROLE_ARN,
        allowed="an IAM role ARN, e.g. arn:aws:iam::123456789012:role/gh-hubspot-reader",
        required=True,
    )
    region = inputs.text(
        "aws-region", pattern=_REGION, allowed="a region such as us-east-1", required=True
    )
    secret_id = inputs.text(
        "aws-secret-id", pattern=_SECRET_ID, allowed="the secret's name or ARN", required=True
    )
    stage = inputs.text(
        "aws-version-stage", pattern=_STAGE, allowed="a version stage such as AWSCURRENT"
    )
    assert role_arn is not None
    assert region is not None
    assert secret_id is not None
    sm_url = inputs.url("aws-endpoint-url") or default_endpoint("secretsmanager", region)
    sts_url = inputs.url("aws-sts-endpoint-url") or default_endpoint("sts", region)
    audience = request.inputs.audience or DEFAULT_AUDIENCE
    duration = max(MIN_DURATION, min(request.inputs.ttl, MAX_DURATION))
    claims: dict[str, str] = {}

    def assume_role() -> Request:
        id_token = request.id_token(audience)
        claims.update(job_claims(id_token))
        return form_request(
            f"{sts_url}/",
            {
                "Action": "AssumeRoleWithWebIdentity",
                "Version": "2011-06-15",
                "RoleArn": role_arn,
                "RoleSessionName": session_name(os.environ),
                "WebIdentityToken": id_token,
                "DurationSeconds": str(duration),
            },
        )

    answer = fetch(assume_role, deadline=request.deadline)
    if answer.status != 200:
        raise _sts_error(answer, role_arn=role_arn, audience=audience, claims=claims)
    credentials = _credentials(answer)
    client = _SecretsManager(sm_url, region, credentials, request)
    body: dict[str, str] = {"SecretId": secret_id}
    if stage:
        body["VersionStage"] = stage
    value = client.call("GetSecretValue", body, secret_id=secret_id, role_arn=role_arn)
    text = value.get("SecretString")
    if not isinstance(text, str):
        raise ProviderError(
            f"the secret {secret_id} has no SecretString (binary secrets are not supported): "
            "store the token or a JSON document as text"
        )
    what = f"the secret {secret_id}"
    secret = read_connector_secret(text, what=what)
    if not text.lstrip().startswith("{"):  # a plain string: scopes and expiry are in the tags
        metadata = _tags(client, secret_id, role_arn)
        secret = read_connector_secret(text, what=what, metadata=metadata)
    return to_issued_token(
        secret,
        provider="aws",
        what=what,
        extra_secrets=tuple(
            s for s in (credentials.secret_access_key, credentials.session_token) if s
        ),
    )


def revoke(request: RevokeRequest) -> str:
    return (
        "nothing to revoke: AWS cannot revoke a single role session; the job's temporary "
        "credentials expire on their own (at most the ttl, at least 15 minutes) and the "
        "connector token in Secrets Manager stays valid until its own expiry"
    )


PROVIDER = Provider(name="aws-secrets-manager", exchange=exchange, revoke=revoke)


def default_endpoint(service: str, region: str) -> str:
    """The regional endpoint, in the partition of ``region`` (China: amazonaws.com.cn)."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{service}.{region}.{suffix}"


def session_name(env: Mapping[str, str]) -> str:
    """``jobtoken-<run id>-<attempt>``: CloudTrail then ties every call to the run."""
    run = _SESSION_CHARS.sub("", env.get("GITHUB_RUN_ID", ""))[:20]
    attempt = _SESSION_CHARS.sub("", env.get("GITHUB_RUN_ATTEMPT", ""))[:4]
    return "-".join(part for part in ("jobtoken", run, attempt) if part)[:64]


# --- internals -------------------------------------------------------------------------------


class _SecretsManager:
    """Signed JSON calls to Secrets Manager with the role's temporary credentials."""

    def __init__(
        self, url: str, region: str, credentials: AwsCredentials, request: ExchangeRequest
    ) -> None:
        self.url = url
        self.region = region
        self.credentials = credentials
        self.request = request

    def call(
        self, action: str, payload: Mapping[str, str], *, secret_id: str, role_arn: str
    ) -> dict[str, Any]:
        body = json.dumps(payload).encode()

        def signed() -> Request:
            headers = sign(
                method="POST",
                url=f"{self.url}/",
                headers={
                    "Content-Type": "application/x-amz-json-1.1",
                    "X-Amz-Target": f"secretsmanager.{action}",
                },
                body=body,
                credentials=self.credentials,
                region=self.region,
                service="secretsmanager",
            )
            return Request("POST", f"{self.url}/", headers, body)

        answer = fetch(signed, deadline=self.request.deadline)
        if answer.status != 200:
            raise _secrets_manager_error(
                answer, action, secret_id=secret_id, role_arn=role_arn, region=self.region
            )
        return answer.json_object("AWS Secrets Manager")


def _tags(client: _SecretsManager, secret_id: str, role_arn: str) -> SecretMetadata:
    try:
        described = client.call(
            "DescribeSecret", {"SecretId": secret_id}, secret_id=secret_id, role_arn=role_arn
        )
    except ProviderError as exc:
        raise ProviderError(
            f"the secret {secret_id} is a plain string, not a JSON document, so jobtoken "
            "reads its scopes and expiry from the tags jobtoken-scopes and jobtoken-expires-at, "
            f"which needs secretsmanager:DescribeSecret: {exc.message}",
            denied=exc.denied,
            details=exc.details,
        ) from None
    tags = described.get("Tags")
    values: dict[str, object] = {}
    if isinstance(tags, list):
        for tag in tags[:64]:
            if isinstance(tag, dict) and isinstance(tag.get("Key"), str):
                values[tag["Key"]] = tag.get("Value")
    return metadata_from_mapping(values, where=f"the tags of the secret {secret_id}")


def _credentials(answer: Response) -> AwsCredentials:
    root = _xml(answer)
    found = {
        name: _find_text(root, name) for name in ("AccessKeyId", "SecretAccessKey", "SessionToken")
    }
    key_id, secret, session = found["AccessKeyId"], found["SecretAccessKey"], found["SessionToken"]
    if not key_id or not _KEY_ID.match(key_id) or not secret or not session:
        raise ProviderError("AWS STS answered AssumeRoleWithWebIdentity without credentials")
    return AwsCredentials(key_id, secret, session)


def _xml(answer: Response) -> ElementTree.Element | None:
    if _UNSAFE_XML.search(answer.body):
        return None  # AWS never sends a DTD: refuse entity tricks
    try:
        return ElementTree.fromstring(answer.body)  # noqa: S314 - no DTD, bounded size
    except ElementTree.ParseError:
        return None


def _find_text(root: ElementTree.Element | None, local_name: str) -> str | None:
    if root is None:
        return None
    for element in root.iter():
        if element.tag == local_name or element.tag.endswith("}" + local_name):
            return (element.text or "").strip()
    return None


def _aws_error(answer: Response) -> tuple[str, str]:
    """(code, message) from a JSON (``__type``) or XML (``<Error><Code>``) AWS error."""
    try:
        body = loads_strict(answer.body)
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("__type") or body.get("code") or "").rsplit("#", 1)[-1]
        message = str(body.get("message") or body.get("Message") or "")
    else:
        root = _xml(answer)
        code = _find_text(root, "Code") or ""
        message = _find_text(root, "Message") or ""
    return neutralize(code or f"HTTP {answer.status}", limit=80), neutralize(message, limit=300)


def _sts_error(
    answer: Response, *, role_arn: str, audience: str, claims: dict[str, str]
) -> ProviderError:
    code, message = _aws_error(answer)
    said = f"(AWS: {code}: {message})"
    sub = claims.get("sub", "?")
    if code == "AccessDenied":
        return ProviderError(
            f"the trust policy of {role_arn} does not let this job assume it: its conditions on "
            f"token.actions.githubusercontent.com:sub must match {sub!r} and on "
            f":aud must match {audience!r} {said}",
            denied=True,
            details=claims,
        )
    if code == "InvalidIdentityToken" and "audience" in message.lower():
        return ProviderError(
            f"the IAM OIDC provider does not list the audience {audience!r}: add it as a client "
            f"ID of the provider, or set the `audience` input to one it lists {said}",
            denied=True,
            details=claims,
        )
    if code == "InvalidIdentityToken":
        return ProviderError(
            "the account has no IAM OIDC identity provider for the job's issuer "
            f"({claims.get('iss', 'https://token.actions.githubusercontent.com')}): "
            f"create one {said}",
            denied=True,
            details=claims,
        )
    if code == "ValidationError" and "DurationSeconds" in message:
        return ProviderError(
            f"the ttl is longer than the MaxSessionDuration of {role_arn}: lower ttl or raise "
            f"the role's maximum session duration {said}"
        )
    return ProviderError(
        f"AWS STS refused AssumeRoleWithWebIdentity for {role_arn} {said}", details=claims
    )


def _secrets_manager_error(
    answer: Response, action: str, *, secret_id: str, role_arn: str, region: str
) -> ProviderError:
    code, message = _aws_error(answer)
    said = f"(AWS: {code}: {message})"
    if code in ("AccessDenied", "AccessDeniedException"):
        return ProviderError(
            f"the role {role_arn} may not call secretsmanager:{action} on {secret_id}: allow it "
            "in the role's policy (and kms:Decrypt if the secret uses a customer managed key) "
            f"{said}",
            denied=True,
        )
    if code == "ResourceNotFoundException":
        return ProviderError(
            f"there is no secret {secret_id} in {region}: check aws-secret-id and aws-region {said}"
        )
    if code in (
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
    ):
        return ProviderError(
            f"Secrets Manager did not accept the signed request: check that aws-region ({region}) "
            f"is the secret's region and aws-endpoint-url belongs to that partition {said}"
        )
    if code == "DecryptionFailure":
        return ProviderError(
            f"the role may not decrypt {secret_id}: allow kms:Decrypt on its KMS key {said}"
        )
    return ProviderError(f"Secrets Manager {action} failed for {secret_id} {said}")
