"""`provider: gcp-secret-manager` — GCP Secret Manager through Workload Identity Federation.

Exchange, top to bottom:

1. inputs: ``gcp-workload-identity-provider``
   (``projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>``),
   ``gcp-service-account`` (optional: impersonate it), ``gcp-secret``
   (``projects/<project>/secrets/<name>``), ``gcp-secret-version`` (default ``latest``),
   and endpoint overrides ``gcp-sts-endpoint-url``, ``gcp-iam-credentials-endpoint-url``,
   ``gcp-secret-manager-endpoint-url`` (tests, Private Service Connect);
2. STS ``POST /v1/token``: RFC 8693 exchange of the job's ID token (audience: the
   ``audience`` input, default ``https://iam.googleapis.com/<provider>``, the
   pool provider's default allowed audience) for a federated access token;
3. with ``gcp-service-account``: IAM Credentials ``generateAccessToken`` for that
   account, with a 300 s lifetime (it is used for one or two calls);
4. Secret Manager ``accessSecretVersion``; the payload's CRC32C is verified. A
   plain-string secret takes its scopes and expiry from the secret's annotations
   ``jobtoken-scopes`` / ``jobtoken-expires-at`` through ``secrets.get`` — the only
   case that needs ``secretmanager.secrets.get``.

Google access tokens cannot be revoked one by one for federated identities; they
expire on their own (the impersonated one after 300 s). Revoke says so.

References: https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token,
https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/generateAccessToken,
https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets.versions/access
"""

from __future__ import annotations

import base64
import binascii
import re

from jobtoken.action.errors import ProviderError
from jobtoken.action.http.client import Request, Response, fetch, form_request, json_request
from jobtoken.action.provider import ExchangeRequest, IssuedToken, Provider, RevokeRequest
from jobtoken.action.providers.secret_document import (
    metadata_from_mapping,
    read_connector_secret,
    to_issued_token,
)
from jobtoken.wire.oauth_terms import ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT
from jobtoken.wire.text import neutralize
from jobtoken.wire.unverified_claims import job_claims

__all__ = ["PROVIDER", "crc32c"]

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
IMPERSONATION_LIFETIME = "300s"
_PROVIDER = re.compile(
    r"^projects/[0-9]{1,20}/locations/global/workloadIdentityPools/[a-z0-9-]{4,32}"
    r"/providers/[a-z0-9-]{4,32}\Z"
)
_SERVICE_ACCOUNT = re.compile(
    r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]{1,100}\.iam\.gserviceaccount\.com\Z"
)
_SECRET = re.compile(r"^projects/[a-z0-9][a-z0-9-]{0,62}/secrets/[A-Za-z0-9_-]{1,255}\Z")
_VERSION = re.compile(r"^(latest|[0-9]{1,10})\Z")
_ACCESS_TOKEN = re.compile(r"^[\x21-\x7e]{8,4096}\Z")


def exchange(request: ExchangeRequest) -> IssuedToken:
    inputs = request.provider_inputs
    provider = inputs.text(
        "gcp-workload-identity-provider",
        pattern=_PROVIDER,
        allowed="projects/<project number>/locations/global/workloadIdentityPools/<pool>/"
        "providers/<provider>",
        required=True,
    )
    service_account = inputs.text(
        "gcp-service-account",
        pattern=_SERVICE_ACCOUNT,
        allowed="a service account email, e.g. reader@my-project.iam.gserviceaccount.com",
    )
    secret_name = inputs.text(
        "gcp-secret", pattern=_SECRET, allowed="projects/<project>/secrets/<name>", required=True
    )
    version = inputs.text("gcp-secret-version", pattern=_VERSION, allowed="latest or a number")
    assert provider is not None
    assert secret_name is not None
    sts_url = inputs.url("gcp-sts-endpoint-url") or "https://sts.googleapis.com"
    iam_url = (
        inputs.url("gcp-iam-credentials-endpoint-url") or "https://iamcredentials.googleapis.com"
    )
    sm_url = inputs.url("gcp-secret-manager-endpoint-url") or "https://secretmanager.googleapis.com"
    audience = request.inputs.audience or f"https://iam.googleapis.com/{provider}"
    claims: dict[str, str] = {}

    def token_exchange() -> Request:
        id_token = request.id_token(audience)
        claims.update(job_claims(id_token))
        return form_request(
            f"{sts_url}/v1/token",
            {
                "grant_type": TOKEN_EXCHANGE_GRANT,
                "audience": f"//iam.googleapis.com/{provider}",
                "scope": CLOUD_PLATFORM,
                "requested_token_type": ACCESS_TOKEN_TYPE,
                "subject_token_type": JWT_TOKEN_TYPE,
                "subject_token": id_token,
            },
        )

    answer = fetch(token_exchange, deadline=request.deadline)
    if answer.status != 200:
        raise _sts_error(answer, provider=provider, audience=audience, claims=claims)
    federated = _string(answer.json_object("Google STS"), "access_token", "Google STS")
    cloud_secrets = [federated]
    access_token = federated
    principal = f"the principal set of {claims.get('repository', 'this repository')} in the pool"
    if service_account:
        access_token = _impersonate(iam_url, service_account, federated, request, claims)
        cloud_secrets.append(access_token)
        principal = service_account
    bearer = {"Authorization": f"Bearer {access_token}"}
    version = version or "latest"
    answer = fetch(
        lambda: Request("GET", f"{sm_url}/v1/{secret_name}/versions/{version}:access", bearer),
        deadline=request.deadline,
    )
    if answer.status != 200:
        raise _secret_manager_error(
            answer, "access", f"{secret_name}/versions/{version}", principal
        )
    text = _payload_text(answer.json_object("Secret Manager"), secret_name)
    what = f"the secret {secret_name}"
    secret = read_connector_secret(text, what=what)
    if not text.lstrip().startswith("{"):  # a plain string: scopes and expiry are in annotations
        answer = fetch(
            lambda: Request("GET", f"{sm_url}/v1/{secret_name}", bearer), deadline=request.deadline
        )
        if answer.status != 200:
            error = _secret_manager_error(answer, "get", secret_name, principal)
            raise ProviderError(
                f"{what} is a plain string, not a JSON document, so jobtoken reads its "
                "annotations jobtoken-scopes and jobtoken-expires-at, which "
                f"needs secretmanager.secrets.get: {error.message}",
                denied=error.denied,
            )
        annotations = answer.json_object("Secret Manager").get("annotations")
        metadata = metadata_from_mapping(
            annotations if isinstance(annotations, dict) else {},
            where=f"the annotations of {secret_name}",
        )
        secret = read_connector_secret(text, what=what, metadata=metadata)
    return to_issued_token(secret, provider="gcp", what=what, extra_secrets=tuple(cloud_secrets))


def revoke(request: RevokeRequest) -> str:
    return (
        "nothing to revoke: Google cannot revoke a federated access token; the job's Google "
        "credentials expire on their own (the impersonated one after 5 minutes) and the "
        "connector token in Secret Manager stays valid until its own expiry"
    )


PROVIDER = Provider(name="gcp-secret-manager", exchange=exchange, revoke=revoke)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, as in Secret Manager's ``dataCrc32c``."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


# --- internals -------------------------------------------------------------------------------


def _impersonate(
    iam_url: str,
    service_account: str,
    federated: str,
    request: ExchangeRequest,
    claims: dict[str, str],
) -> str:
    answer = fetch(
        lambda: json_request(
            "POST",
            f"{iam_url}/v1/projects/-/serviceAccounts/{service_account}:generateAccessToken",
            {"scope": [CLOUD_PLATFORM], "lifetime": IMPERSONATION_LIFETIME},
            {"Authorization": f"Bearer {federated}"},
        ),
        deadline=request.deadline,
    )
    if answer.status == 403:
        repository = claims.get("repository", "<owner/repo>")
        raise ProviderError(
            f"the job may not impersonate {service_account}: grant "
            "roles/iam.workloadIdentityUser on it to principalSet://iam.googleapis.com/"
            f".../attribute.repository/{repository} ({_google_message(answer)})",
            denied=True,
            details=claims,
        )
    if answer.status != 200:
        raise ProviderError(
            f"IAM Credentials generateAccessToken for {service_account} failed "
            f"({_google_message(answer)})"
        )
    return _string(answer.json_object("IAM Credentials"), "accessToken", "IAM Credentials")


def _payload_text(body: dict[str, object], secret_name: str) -> str:
    payload = body.get("payload")
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, str):
        raise ProviderError(f"Secret Manager answered without a payload for {secret_name}")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderError(f"the payload of {secret_name} is not valid base64") from None
    checksum = payload.get("dataCrc32c") if isinstance(payload, dict) else None
    if checksum is not None and str(checksum) != str(crc32c(raw)):
        raise ProviderError(f"the payload of {secret_name} does not match its CRC32C checksum")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProviderError(f"the payload of {secret_name} is not UTF-8 text") from None


def _string(body: dict[str, object], name: str, what: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not _ACCESS_TOKEN.match(value):
        raise ProviderError(f"{what} answered without a usable {name}")
    return value


def _sts_error(
    answer: Response, *, provider: str, audience: str, claims: dict[str, str]
) -> ProviderError:
    error, description = _oauth_error(answer)
    said = f"(Google STS: {error}: {description})"
    if error == "invalid_grant" and "audience" in description.lower():
        return ProviderError(
            f"the pool provider does not accept the audience {audience!r}: set `audience` to "
            f"one of its allowed audiences (default https://iam.googleapis.com/{provider}) {said}",
            denied=True,
            details=claims,
        )
    if error == "unauthorized_client" or "attribute condition" in description.lower():
        return ProviderError(
            "the pool provider's attribute condition rejects this job: it sees "
            f"repository={claims.get('repository', '?')!r}, ref={claims.get('ref', '?')!r}, "
            f"sub={claims.get('sub', '?')!r} {said}",
            denied=True,
            details=claims,
        )
    if error == "invalid_target":
        return ProviderError(
            f"no active workload identity pool provider {provider}: check "
            "gcp-workload-identity-provider (it uses the project NUMBER, not its ID) "
            f"{said}"
        )
    return ProviderError(
        f"Google STS refused the token exchange {said}", denied=True, details=claims
    )


def _secret_manager_error(
    answer: Response, verb: str, resource: str, principal: str
) -> ProviderError:
    message = _google_message(answer)
    if answer.status == 403:
        permission = (
            "secretmanager.versions.access" if verb == "access" else "secretmanager.secrets.get"
        )
        role = (
            "roles/secretmanager.secretAccessor"
            if verb == "access"
            else "roles/secretmanager.viewer"
        )
        return ProviderError(
            f"{principal} lacks {permission} on {resource}: grant {role} on the secret ({message})",
            denied=True,
        )
    if answer.status == 404:
        return ProviderError(
            f"Secret Manager has no {resource}: check gcp-secret and gcp-secret-version ({message})"
        )
    if answer.status == 401:
        return ProviderError(f"Secret Manager did not accept the access token ({message})")
    return ProviderError(f"Secret Manager could not {verb} {resource} ({message})")


def _oauth_error(answer: Response) -> tuple[str, str]:
    try:
        body = answer.json_object("Google STS")
    except Exception:
        return f"HTTP {answer.status}", ""
    return (
        neutralize(str(body.get("error") or f"HTTP {answer.status}"), limit=60),
        neutralize(str(body.get("error_description") or ""), limit=300),
    )


def _google_message(answer: Response) -> str:
    """``error.status: error.message`` of Google's JSON error, neutralized."""
    try:
        error = answer.json_object("Google").get("error")
    except Exception:
        return f"HTTP {answer.status}"
    if not isinstance(error, dict):
        return f"HTTP {answer.status}"
    status = neutralize(str(error.get("status") or answer.status), limit=40)
    return f"{status}: {neutralize(str(error.get('message') or ''), limit=300)}"
