"""`provider: azure-key-vault` — Azure Key Vault through an Entra ID federated credential.

Exchange, top to bottom:

1. inputs: ``azure-client-id``, ``azure-tenant-id``, ``azure-key-vault-url``
   (``https://<vault>.vault.azure.net``), ``azure-secret-name``,
   ``azure-secret-version`` (optional), ``azure-authority-url`` (default
   ``https://login.microsoftonline.com``; sovereign clouds and tests);
2. Entra ID ``POST /<tenant>/oauth2/v2.0/token``: ``client_credentials`` with
   ``client_assertion`` = the job's ID token (audience: the ``audience`` input,
   default ``api://AzureADTokenExchange``) for a Key Vault access token (scope
   ``https://vault.azure.net/.default``, or the sovereign cloud's vault host);
3. Key Vault ``GET /secrets/<name>[/<version>]?api-version=7.4``. A disabled or
   not-yet-valid secret is refused. Scopes and expiry come from a JSON document in
   the value, else the tags ``jobtoken-scopes`` / ``jobtoken-expires-at``; the
   secret's own ``attributes.exp`` also bounds the expiry (the sooner wins).

Entra ID cannot revoke one access token; it expires on its own. Revoke says so.

References: https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow,
https://learn.microsoft.com/rest/api/keyvault/secrets/get-secret/get-secret
"""

from __future__ import annotations

import datetime
import re
from urllib.parse import urlsplit

from jobtoken.action.errors import ProviderError
from jobtoken.action.http.client import Request, Response, fetch, form_request
from jobtoken.action.provider import ExchangeRequest, IssuedToken, Provider, RevokeRequest
from jobtoken.action.providers.secret_document import (
    metadata_from_mapping,
    parse_expiry,
    read_connector_secret,
    to_issued_token,
)
from jobtoken.wire.text import neutralize
from jobtoken.wire.unverified_claims import job_claims

__all__ = ["PROVIDER", "key_vault_scope"]

DEFAULT_AUDIENCE = "api://AzureADTokenExchange"
API_VERSION = "7.4"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_GUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
)
_TENANT = re.compile(r"^([0-9a-fA-F-]{36}|[A-Za-z0-9][A-Za-z0-9.-]{1,250}\.[A-Za-z]{2,})\Z")
_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}\Z")
_SECRET_VERSION = re.compile(r"^[0-9a-f]{32}\Z")
_ACCESS_TOKEN = re.compile(r"^[\x21-\x7e]{8,16384}\Z")


def exchange(request: ExchangeRequest) -> IssuedToken:
    inputs = request.provider_inputs
    client_id = inputs.text(
        "azure-client-id",
        pattern=_GUID,
        allowed="the app registration's client ID (a GUID)",
        required=True,
    )
    tenant_id = inputs.text(
        "azure-tenant-id",
        pattern=_TENANT,
        allowed="the directory (tenant) ID, a GUID",
        required=True,
    )
    vault_url = inputs.url("azure-key-vault-url", required=True)
    name = inputs.text(
        "azure-secret-name",
        pattern=_SECRET_NAME,
        allowed="1-127 letters, digits and -",
        required=True,
    )
    version = inputs.text("azure-secret-version", pattern=_SECRET_VERSION, allowed="32 hex digits")
    authority = inputs.url("azure-authority-url") or "https://login.microsoftonline.com"
    assert client_id is not None
    assert tenant_id is not None
    assert vault_url is not None
    assert name is not None
    audience = request.inputs.audience or DEFAULT_AUDIENCE
    claims: dict[str, str] = {}

    def token_request() -> Request:
        id_token = request.id_token(audience)
        claims.update(job_claims(id_token))
        return form_request(
            f"{authority}/{tenant_id}/oauth2/v2.0/token",
            {
                "client_id": client_id,
                "scope": key_vault_scope(vault_url),
                "grant_type": "client_credentials",
                "client_assertion_type": JWT_BEARER,
                "client_assertion": id_token,
            },
        )

    answer = fetch(token_request, deadline=request.deadline)
    if answer.status != 200:
        raise _entra_error(
            answer, client_id=client_id, tenant_id=tenant_id, audience=audience, claims=claims
        )
    access_token = answer.json_object("Entra ID").get("access_token")
    if not isinstance(access_token, str) or not _ACCESS_TOKEN.match(access_token):
        raise ProviderError("Entra ID answered without a usable access_token")
    path = f"/secrets/{name}/{version}" if version else f"/secrets/{name}"
    answer = fetch(
        lambda: Request(
            "GET",
            f"{vault_url}{path}?api-version={API_VERSION}",
            {"Authorization": f"Bearer {access_token}"},
        ),
        deadline=request.deadline,
    )
    if answer.status != 200:
        raise _key_vault_error(answer, name=name, vault_url=vault_url, client_id=client_id)
    bundle = answer.json_object("Key Vault")
    what = f"the Key Vault secret {name}"
    value = bundle.get("value")
    if not isinstance(value, str):
        raise ProviderError(f"Key Vault answered without a value for {name}")
    attributes = bundle.get("attributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    if attributes.get("enabled") is False:
        raise ProviderError(f"{what} is disabled: enable it or point azure-secret-name elsewhere")
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before = attributes.get("nbf")
    if not_before is not None and parse_expiry(not_before, what=f"attributes.nbf of {what}") > now:
        raise ProviderError(f"{what} is not valid yet (its attributes.nbf is in the future)")
    exp = attributes.get("exp")
    other_expiries = [] if exp is None else [parse_expiry(exp, what=f"attributes.exp of {what}")]
    tags = bundle.get("tags")
    metadata = metadata_from_mapping(
        tags if isinstance(tags, dict) else {}, where=f"the tags of {what}"
    )
    secret = read_connector_secret(value, what=what, metadata=metadata)
    return to_issued_token(
        secret,
        provider="azure",
        what=what,
        other_expiries=other_expiries,
        extra_secrets=(access_token,),
        now=now,
    )


def revoke(request: RevokeRequest) -> str:
    return (
        "nothing to revoke: Entra ID cannot revoke a single access token; the job's Key Vault "
        "access token expires on its own (about an hour) and the connector token in Key Vault "
        "stays valid until its own expiry"
    )


PROVIDER = Provider(name="azure-key-vault", exchange=exchange, revoke=revoke)


def key_vault_scope(vault_url: str) -> str:
    """``https://vault.<cloud suffix>/.default`` for the vault's cloud (public by default)."""
    host = urlsplit(vault_url).hostname or ""
    _, _, suffix = host.partition(".")
    if suffix.startswith("vault."):
        return f"https://{suffix}/.default"
    return "https://vault.azure.net/.default"


# --- internals -------------------------------------------------------------------------------


def _entra_error(
    answer: Response, *, client_id: str, tenant_id: str, audience: str, claims: dict[str, str]
) -> ProviderError:
    try:
        body = answer.json_object("Entra ID")
    except Exception:
        body = {}
    codes = body.get("error_codes")
    code = codes[0] if isinstance(codes, list) and codes and isinstance(codes[0], int) else 0
    description = neutralize(str(body.get("error_description") or ""), limit=240)
    said = (
        f"(Entra ID: AADSTS{code}: {description})" if code else f"(Entra ID: HTTP {answer.status})"
    )
    sub = claims.get("sub", "?")
    if code in (70021, 700213):
        return ProviderError(
            f"no federated credential of the app {client_id} matches this job: its subject must be "
            f"{sub!r}, issuer {claims.get('iss', '?')!r}, audience {audience!r} {said}",
            denied=True,
            details=claims,
        )
    if code == 700212:
        return ProviderError(
            f"the app's federated credential does not accept the audience {audience!r}: use "
            f"{DEFAULT_AUDIENCE} on both sides {said}",
            denied=True,
            details=claims,
        )
    if code in (700016, 7000215):
        return ProviderError(
            f"tenant {tenant_id} has no application {client_id}: check azure-client-id and "
            f"azure-tenant-id {said}"
        )
    if code in (90002, 900023):
        return ProviderError(f"there is no tenant {tenant_id}: check azure-tenant-id {said}")
    return ProviderError(f"Entra ID refused the token request {said}", denied=True, details=claims)


def _key_vault_error(
    answer: Response, *, name: str, vault_url: str, client_id: str
) -> ProviderError:
    try:
        error = answer.json_object("Key Vault").get("error")
    except Exception:
        error = None
    error = error if isinstance(error, dict) else {}
    code = neutralize(str(error.get("code") or f"HTTP {answer.status}"), limit=60)
    message = neutralize(str(error.get("message") or ""), limit=300)
    said = f"(Key Vault: {code}: {message})"
    if answer.status == 403:
        return ProviderError(
            f"the app {client_id} may not read the secret {name}: assign it the role "
            '"Key Vault Secrets User" on the secret (RBAC) or grant it Get on secrets '
            f"(access policy) {said}",
            denied=True,
        )
    if answer.status == 404:
        return ProviderError(
            f"{vault_url} has no secret {name}: check azure-secret-name and "
            f"azure-secret-version {said}"
        )
    if answer.status == 401:
        return ProviderError(
            f"Key Vault did not accept the access token: the vault may be in another tenant "
            f"than azure-tenant-id, or another cloud than azure-authority-url {said}"
        )
    return ProviderError(f"Key Vault could not get the secret {name} {said}")
