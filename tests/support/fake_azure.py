"""A loopback fake of Microsoft Entra ID and Azure Key Vault for `azure-key-vault`.

One server answers what two Azure hosts answer:

- Entra ID ``POST /{tenant}/oauth2/v2.0/token`` (login.microsoftonline.com):
  ``client_credentials`` with a federated ``client_assertion`` (the job's ID
  token) for a Key Vault access token;
- Key Vault ``GET /secrets/{name}[/{version}]?api-version=7.4`` ({vault}.vault.azure.net).

Requests are checked field by field against the references
(https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow#third-case-access-token-request-with-a-federated-credential,
https://learn.microsoft.com/rest/api/keyvault/secrets/get-secret/get-secret);
answers use their shapes: Entra's ``{"error", "error_description",
"error_codes", …}`` with AADSTS codes, Key Vault's ``{"error": {"code",
"message"}}`` and its 401 ``WWW-Authenticate`` challenge.

Set-up is plain data: ``tenant_id``, ``apps`` (client id -> federated
credentials, each an (issuer, subject, audience) triple as in the Entra
portal), ``secrets`` and ``readers`` (client ids with "Key Vault Secrets User").
"""

from __future__ import annotations

import datetime
import re
import secrets
import uuid
from dataclasses import dataclass, field

from support.cloud_fake import Call, CloudFake, Reply, verify_github_jwt
from support.oidc_issuer import FakeOidcIssuer

__all__ = ["AZURE_AUDIENCE", "KEY_VAULT_SCOPE", "FakeAzure", "FederatedCredential", "KvSecret"]

AZURE_AUDIENCE = "api://AzureADTokenExchange"
KEY_VAULT_SCOPE = "https://vault.azure.net/.default"
CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
API_VERSIONS = ("7.4", "7.5", "2025-07-01")
_TOKEN_PATH = re.compile(r"^/([^/]+)/oauth2/v2\.0/token\Z")
_SECRET_PATH = re.compile(r"^/secrets/([0-9A-Za-z-]{1,127})(?:/([0-9a-f]{32}))?/?\Z")


@dataclass(frozen=True)
class FederatedCredential:
    issuer: str
    subject: str
    audience: str = AZURE_AUDIENCE


@dataclass
class KvSecret:
    value: str
    tags: dict[str, str] = field(default_factory=dict)
    exp: int | None = None
    nbf: int | None = None
    enabled: bool = True
    version: str = field(default_factory=lambda: uuid.uuid4().hex)
    content_type: str | None = None


class FakeAzure(CloudFake):
    def __init__(self, issuer: FakeOidcIssuer) -> None:
        super().__init__()
        self.issuer = issuer
        self.tenant_id = str(uuid.uuid4())
        self.client_id = str(uuid.uuid4())
        self.apps: dict[str, list[FederatedCredential]] = {
            self.client_id: [FederatedCredential(issuer.url, issuer.claims["sub"])]
        }
        self.secrets: dict[str, KvSecret] = {}
        #: secret name -> client ids with "Key Vault Secrets User" on that secret
        self.readers: dict[str, set[str]] = {}
        #: client ids with "Key Vault Secrets User" on the whole vault
        self.vault_readers: set[str] = {self.client_id}
        self.token_lifetime = 3599
        self._tokens: dict[str, tuple[str, datetime.datetime]] = {}

    def add_secret(self, name: str, secret: KvSecret, *, readers: set[str] | None = None) -> None:
        self.secrets[name] = secret
        self.readers[name] = {self.client_id} if readers is None else set(readers)

    @property
    def authority(self) -> str:
        return f"{self.url}/{self.tenant_id}"

    def handle(self, call: Call) -> Reply:
        if call.method == "POST" and (match := _TOKEN_PATH.match(call.path)):
            return self._token(call, match.group(1))
        if call.method == "GET" and (match := _SECRET_PATH.match(call.path)):
            return self._get_secret(call, match.group(1), match.group(2))
        return self.violation(
            f"unknown endpoint {call.method} {call.path}",
            _kv_error(404, "NotFound", "The requested resource was not found."),
        )

    # --- Entra ID ----------------------------------------------------------------------------

    def _token(self, call: Call, tenant: str) -> Reply:
        content_type = call.headers.get("content-type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return self.violation(
                f"token request Content-Type {content_type!r}",
                _aad_error("invalid_request", 900144, "The request body must contain a form."),
            )
        form = call.form()
        expected = {
            "grant_type": CLIENT_CREDENTIALS,
            "client_assertion_type": JWT_BEARER,
            "scope": KEY_VAULT_SCOPE,
        }
        for name, value in expected.items():
            if form.get(name) != value:
                return self.violation(
                    f"token request {name}={form.get(name)!r}, expected {value!r}",
                    _aad_error(
                        "invalid_request",
                        900144,
                        f"The request body must contain the following parameter: '{name}'.",
                    ),
                )
        extra = set(form) - {*expected, "client_id", "client_assertion"}
        if extra or "client_secret" in form:
            return self.violation(
                f"token request has unexpected fields {sorted(extra)}",
                _aad_error("invalid_request", 900144, "Unexpected parameter."),
            )
        if tenant != self.tenant_id:
            return _aad_error(
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )
        client_id = form.get("client_id", "")
        credentials = self.apps.get(client_id)
        if credentials is None:
            return _aad_error(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant}'.",
            )
        claims = verify_github_jwt(form.get("client_assertion", ""), self.issuer)
        if claims is None:
            return _aad_error(
                "invalid_client", 700024, "Client assertion is not within its valid time range."
            )
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if not any(c.audience in audiences for c in credentials):
            return _aad_error(
                "invalid_client",
                700212,
                "No matching federated identity record found for presented assertion audience "
                f"'{' '.join(audiences)}'.",
            )
        if not any(c.issuer == claims["iss"] and c.subject == claims["sub"] for c in credentials):
            return _aad_error(
                "invalid_client",
                700213,
                "No matching federated identity record found for presented assertion subject "
                f"'{claims['sub']}'. Please note that the matching is done using a case-sensitive "
                "comparison. Check your federated identity credential Subject, Audience and "
                "Issuer against the presented assertion.",
            )
        token = "eyJ0eXAiOiJKV1Qi.fake-kv." + secrets.token_urlsafe(24)
        expires = _now() + datetime.timedelta(seconds=self.token_lifetime)
        self._tokens[token] = (client_id, expires)
        return Reply(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            },
        )

    # --- Key Vault ---------------------------------------------------------------------------

    def _get_secret(self, call: Call, name: str, version: str | None) -> Reply:
        api_version = call.query.get("api-version", [""])
        if len(api_version) != 1 or api_version[0] not in API_VERSIONS:
            return self.violation(
                f"Key Vault api-version={api_version!r}",
                _kv_error(
                    400,
                    "BadParameter",
                    f"The specified version ({api_version[0]}) is not recognized. Consider using "
                    "the latest supported version (7.4).",
                ),
            )
        token = call.bearer()
        grant = self._tokens.get(token or "")
        if grant is None or grant[1] <= _now():
            reply = _kv_error(
                401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."
            )
            reply.headers["WWW-Authenticate"] = (
                f'Bearer authorization="https://login.microsoftonline.com/{self.tenant_id}", '
                'resource="https://vault.azure.net"'
            )
            if token is not None:
                self.violation("Key Vault request with an unknown bearer token", reply)
            return reply
        if call.body:
            return self.violation("Key Vault GET with a body", _kv_error(400, "BadParameter", "x"))
        client_id = grant[0]
        # role assignments at vault scope reach every secret, existing or not
        readers = self.readers.get(name, set()) if name in self.secrets else self.vault_readers
        if client_id not in readers:
            return _kv_error(
                403,
                "Forbidden",
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, "
                "deny assignments or role definitions were changed recently, please observe "
                f"propagation time.\r\nCaller: appid={client_id};\r\nAction: "
                "'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: "
                f"'/secrets/{name}'",
                inner="ForbiddenByRbac",
            )
        secret = self.secrets.get(name)
        if secret is None or (version is not None and version != secret.version):
            return _kv_error(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {name} was not found in this key vault. If you recently "
                "deleted this secret you may be able to recover it using the correct recovery "
                "command.",
            )
        if not secret.enabled:
            return _kv_error(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
        attributes: dict[str, object] = {
            "enabled": secret.enabled,
            "created": 1767225600,
            "updated": 1767225600,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }
        if secret.exp is not None:
            attributes["exp"] = secret.exp
        if secret.nbf is not None:
            attributes["nbf"] = secret.nbf
        body: dict[str, object] = {
            "value": secret.value,
            "id": f"{self.url}/secrets/{name}/{secret.version}",
            "attributes": attributes,
            "tags": secret.tags,
        }
        if secret.content_type:
            body["contentType"] = secret.content_type
        return Reply(200, body)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _aad_error(error: str, code: int, description: str) -> Reply:
    now = _now()
    trace = str(uuid.uuid4())
    return Reply(
        400,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: "
            f"{uuid.uuid4()} Timestamp: {now.strftime('%Y-%m-%d %H:%M:%SZ')}",
            "error_codes": [code],
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
    )


def _kv_error(status: int, code: str, message: str, inner: str | None = None) -> Reply:
    error: dict[str, object] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return Reply(status, {"error": error})
