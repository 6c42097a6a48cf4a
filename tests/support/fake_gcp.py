"""A loopback fake of the three Google APIs the `gcp-secret-manager` provider calls.

One server answers, under one port, what three Google hosts answer:

- Security Token Service ``POST /v1/token`` (sts.googleapis.com): RFC 8693 token
  exchange of the job's ID token for a federated access token, against a
  Workload Identity Federation provider;
- IAM Credentials ``POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken``
  (iamcredentials.googleapis.com): a service account's access token;
- Secret Manager ``GET /v1/projects/{p}/secrets/{s}/versions/{v}:access`` and
  ``GET /v1/projects/{p}/secrets/{s}`` (secretmanager.googleapis.com).

Requests are checked field by field against the REST references
(https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token,
https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/generateAccessToken,
https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets.versions/access);
answers use their response shapes, and errors their formats: OAuth
``{"error", "error_description"}`` for STS, ``{"error": {"code", "message",
"status"}}`` for the others.

The cloud-side set-up is plain data: ``provider_resource`` (the pool provider),
``attribute_condition`` (claim -> required value, like
``assertion.repository == 'octo-org/octo-repo'``), ``impersonators`` (service
account -> repositories granted ``roles/iam.workloadIdentityUser``), and
``secrets`` / ``accessors`` (who has ``roles/secretmanager.secretAccessor``).
"""

from __future__ import annotations

import base64
import datetime
import re
import secrets
from dataclasses import dataclass, field

from support.cloud_fake import Call, CloudFake, Reply, verify_github_jwt
from support.oidc_issuer import FakeOidcIssuer

__all__ = ["FakeGcp", "GcpSecret", "crc32c"]

PROJECT_NUMBER = "123456789012"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SUBJECT_TOKEN_TYPES = (
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:id_token",
)

_GENERATE = re.compile(r"^/v1/projects/-/serviceAccounts/([^/:]+):generateAccessToken\Z")
_ACCESS = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/]+)/versions/([^/:]+):access\Z")
_SECRET = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/:]+)\Z")
_DURATION = re.compile(r"^([0-9]{1,5})s\Z")


@dataclass
class GcpSecret:
    value: bytes
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    #: "latest" and "1" both name this version
    version: str = "1"


@dataclass
class _Grant:
    """Who an access token stands for: a federated principal or a service account."""

    principal: str
    repository: str
    expires: datetime.datetime


class FakeGcp(CloudFake):
    def __init__(
        self, issuer: FakeOidcIssuer, *, pool: str = "github", provider: str = "github"
    ) -> None:
        super().__init__()
        self.issuer = issuer
        self.provider_resource = (
            f"projects/{PROJECT_NUMBER}/locations/global/workloadIdentityPools/{pool}"
            f"/providers/{provider}"
        )
        #: the audience the pool provider accepts in ID tokens (Google's default)
        self.allowed_audience = f"https://iam.googleapis.com/{self.provider_resource}"
        self.attribute_condition: dict[str, str] = {"repository": issuer.claims["repository"]}
        self.impersonators: dict[str, set[str]] = {}
        self.secrets: dict[str, GcpSecret] = {}
        #: secret name -> principals (``principalSet://…/attribute.repository/R`` or SA emails)
        self.accessors: dict[str, set[str]] = {}
        #: principals that may read a secret's metadata (secretmanager.secrets.get)
        self.metadata_readers: dict[str, set[str]] = {}
        self.federated_lifetime = 3600
        self._grants: dict[str, _Grant] = {}

    # --- set-up helpers ----------------------------------------------------------------------

    def principal_set(self, repository: str) -> str:
        pool = self.provider_resource.rsplit("/providers/", 1)[0]
        return f"principalSet://iam.googleapis.com/{pool}/attribute.repository/{repository}"

    def add_secret(
        self,
        name: str,
        value: str,
        *,
        readers: set[str],
        annotations: dict[str, str] | None = None,
        metadata_readers: set[str] | None = None,
    ) -> None:
        self.secrets[name] = GcpSecret(value.encode(), dict(annotations or {}))
        self.accessors[name] = set(readers)
        self.metadata_readers[name] = set(metadata_readers or ())

    # --- the APIs ----------------------------------------------------------------------------

    def handle(self, call: Call) -> Reply:
        if call.method == "POST" and call.path == "/v1/token":
            return self._sts(call)
        if call.method == "POST" and (match := _GENERATE.match(call.path)):
            return self._generate_access_token(call, match.group(1))
        if call.method == "GET" and (match := _ACCESS.match(call.path)):
            return self._access(call, *match.groups())
        if call.method == "GET" and (match := _SECRET.match(call.path)):
            return self._get_secret(call, *match.groups())
        return self.violation(
            f"unknown endpoint {call.method} {call.path}",
            _google_error(404, "NOT_FOUND", f"The requested URL {call.path} was not found."),
        )

    def _sts(self, call: Call) -> Reply:
        if not call.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self.violation(
                "STS request is not form-encoded",
                _oauth_error("invalid_request", "Invalid Content-Type."),
            )
        form = call.form()
        expected = {
            "grant_type": TOKEN_EXCHANGE,
            "audience": f"//iam.googleapis.com/{self.provider_resource}",
            "scope": CLOUD_PLATFORM,
            "requested_token_type": ACCESS_TOKEN_TYPE,
        }
        for name, value in expected.items():
            if name == "audience" and form.get(name, "").startswith("//iam.googleapis.com/"):
                continue  # a wrong provider is a user error, reported below
            if form.get(name) != value:
                return self.violation(
                    f"STS {name}={form.get(name)!r}, expected {value!r}",
                    _oauth_error("invalid_request", f'Invalid value for "{name}".'),
                )
        if form.get("subject_token_type") not in SUBJECT_TOKEN_TYPES:
            return self.violation(
                f"STS subject_token_type={form.get('subject_token_type')!r}",
                _oauth_error("invalid_request", 'Invalid value for "subject_token_type".'),
            )
        if set(form) - {*expected, "subject_token_type", "subject_token", "options"}:
            return self.violation(
                f"STS unexpected fields {sorted(set(form) - set(expected))}",
                _oauth_error("invalid_request", "Unknown field."),
            )
        if form["audience"] != expected["audience"]:
            return _oauth_error(
                "invalid_target",
                'The target service indicated by the "audience" parameters is invalid. This '
                "might either be because the pool or provider is disabled or deleted or because "
                "it doesn't exist.",
            )
        claims = verify_github_jwt(form.get("subject_token", ""), self.issuer)
        if claims is None:
            return _oauth_error("invalid_grant", "ID Token issued at 0 is stale to sign-in.")
        if claims["aud"] != self.allowed_audience:
            return _oauth_error(
                "invalid_grant",
                f"The audience in ID Token [{claims['aud']}] does not match the expected audience.",
            )
        for claim, required in self.attribute_condition.items():
            if claims.get(claim) != required:
                return _oauth_error(
                    "unauthorized_client",
                    "The given credential is rejected by the attribute condition.",
                )
        token = "ya29.fed-" + secrets.token_urlsafe(24)
        self._grants[token] = _Grant(
            principal=self.principal_set(claims["repository"]),
            repository=claims["repository"],
            expires=_now() + datetime.timedelta(seconds=self.federated_lifetime),
        )
        return Reply(
            200,
            {
                "access_token": token,
                "issued_token_type": ACCESS_TOKEN_TYPE,
                "token_type": "Bearer",
                "expires_in": self.federated_lifetime,
            },
        )

    def _generate_access_token(self, call: Call, email: str) -> Reply:
        grant = self._grant(call)
        if grant is None:
            return _unauthenticated()
        if not call.headers.get("content-type", "").startswith("application/json"):
            return self.violation(
                "generateAccessToken body is not JSON", _invalid_argument("Invalid JSON payload.")
            )
        body = call.json()
        if not isinstance(body, dict) or body.get("scope") != [CLOUD_PLATFORM]:
            return self.violation(
                f"generateAccessToken body {body!r}",
                _invalid_argument("Scope required."),
            )
        if set(body) - {"scope", "lifetime", "delegates"}:
            return self.violation(
                f"generateAccessToken fields {sorted(body)}", _invalid_argument("Unknown name.")
            )
        lifetime = 3600
        if "lifetime" in body:
            match = _DURATION.match(str(body["lifetime"]))
            if not match:
                return self.violation(
                    f"generateAccessToken lifetime={body['lifetime']!r}",
                    _invalid_argument(
                        "Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration)"
                    ),
                )
            lifetime = int(match.group(1))
            if not 1 <= lifetime <= 3600:
                return self.violation(
                    f"generateAccessToken lifetime {lifetime}s out of range",
                    _invalid_argument("The lifetime must be between 1s and 3600s."),
                )
        if grant.repository not in self.impersonators.get(email, set()):
            return _google_error(
                403,
                "PERMISSION_DENIED",
                "Permission 'iam.serviceAccounts.getAccessToken' denied on resource "
                "(or it may not exist).",
            )
        token = "ya29.sa-" + secrets.token_urlsafe(24)
        expires = _now() + datetime.timedelta(seconds=lifetime)
        self._grants[token] = _Grant(principal=email, repository=grant.repository, expires=expires)
        return Reply(
            200, {"accessToken": token, "expireTime": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
        )

    def _access(self, call: Call, project: str, name: str, version: str) -> Reply:
        grant = self._grant(call)
        if grant is None:
            return _unauthenticated()
        if call.body:
            return self.violation(
                "accessSecretVersion with a body", _invalid_argument("Unexpected body.")
            )
        resource = f"projects/{project}/secrets/{name}/versions/{version}"
        secret = self.secrets.get(name)
        if grant.principal not in self.accessors.get(name, set()):
            return _google_error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'secretmanager.versions.access' denied for resource '{resource}' "
                "(or it may not exist).",
            )
        if secret is None or version not in ("latest", secret.version):
            return _google_error(404, "NOT_FOUND", f"Secret Version [{resource}] not found.")
        return Reply(
            200,
            {
                "name": f"projects/{PROJECT_NUMBER}/secrets/{name}/versions/{secret.version}",
                "payload": {
                    "data": base64.b64encode(secret.value).decode(),
                    "dataCrc32c": str(crc32c(secret.value)),
                },
            },
        )

    def _get_secret(self, call: Call, project: str, name: str) -> Reply:
        grant = self._grant(call)
        if grant is None:
            return _unauthenticated()
        resource = f"projects/{project}/secrets/{name}"
        if grant.principal not in self.metadata_readers.get(name, set()):
            return _google_error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'secretmanager.secrets.get' denied for resource '{resource}' "
                "(or it may not exist).",
            )
        secret = self.secrets.get(name)
        if secret is None:
            return _google_error(404, "NOT_FOUND", f"Secret [{resource}] not found.")
        return Reply(
            200,
            {
                "name": f"projects/{PROJECT_NUMBER}/secrets/{name}",
                "replication": {"automatic": {}},
                "createTime": "2026-01-01T00:00:00.000000Z",
                "labels": secret.labels,
                "annotations": secret.annotations,
                "etag": '"16f0a1b2c3d4e5"',
            },
        )

    def _grant(self, call: Call) -> _Grant | None:
        token = call.bearer()
        grant = self._grants.get(token or "")
        if grant is None or grant.expires <= _now():
            return None
        return grant


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), table-driven (the provider's is bitwise: each checks the other)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc32c_table() -> list[int]:
    table = []
    for index in range(256):
        value = index
        for _ in range(8):
            value = (value >> 1) ^ 0x82F63B78 if value & 1 else value >> 1
        table.append(value)
    return table


_CRC32C_TABLE = _crc32c_table()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _oauth_error(error: str, description: str) -> Reply:
    return Reply(400, {"error": error, "error_description": description})


def _google_error(code: int, status: str, message: str) -> Reply:
    return Reply(code, {"error": {"code": code, "message": message, "status": status}})


def _invalid_argument(message: str) -> Reply:
    return _google_error(400, "INVALID_ARGUMENT", message)


def _unauthenticated() -> Reply:
    return Reply(
        401,
        {
            "error": {
                "code": 401,
                "message": "Request had invalid authentication credentials. "
                "Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
                "status": "UNAUTHENTICATED",
            }
        },
        {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
    )
