"""`provider: vault` — HashiCorp Vault and OpenBao.

Exchange, top to bottom:

1. inputs: ``vault-url``, ``vault-role``, ``vault-secret-path`` (the API path,
   e.g. ``secret/data/connectors/hubspot`` for KV v2), ``vault-auth-mount``
   (default ``jwt``), ``vault-namespace`` (Vault Enterprise / OpenBao namespaces);
2. ``POST /v1/auth/<mount>/login`` with ``{"role", "jwt"}``: the job's ID token
   (audience: the ``audience`` input, default ``vault-url``) for a Vault token;
3. ``GET /v1/<vault-secret-path>`` with that token. The secret's data (KV v2:
   ``data.data``) is the connector secret document: ``token``, ``scopes``,
   ``expires_at``; KV v2 ``custom_metadata`` may carry ``jobtoken-scopes`` and
   ``jobtoken-expires-at`` instead;
4. ``expires-at`` is the soonest of the document's expiry and, when the secret
   came with a lease (dynamic secrets), the lease and the Vault token's TTL.

The Vault token is masked and kept only in the revoke state. Revoke calls
``auth/token/revoke-self``: Vault revokes the token and every lease it created.

Reference: https://developer.hashicorp.com/vault/api-docs/auth/jwt,
https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2
"""

from __future__ import annotations

import contextlib
import datetime
import re

from jobtoken.action.deadline import Deadline
from jobtoken.action.errors import ProviderError
from jobtoken.action.http.client import Request, Response, describe_url, fetch, json_request
from jobtoken.action.provider import ExchangeRequest, IssuedToken, Provider, RevokeRequest
from jobtoken.action.providers.secret_document import (
    ConnectorSecret,
    metadata_from_mapping,
    read_connector_fields,
    to_issued_token,
)
from jobtoken.wire.text import neutralize
from jobtoken.wire.unverified_claims import job_claims

__all__ = ["PROVIDER"]

_MOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}){0,3}\Z")
_ROLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}\Z")
_NAMESPACE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}){0,7}/?\Z"
)
_SECRET_PATH = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9_.@=+-]{0,127}(/[A-Za-z0-9_.@=+-]{1,128}){1,15}\Z"
)
_VAULT_TOKEN = re.compile(r"^[A-Za-z0-9_.+/=-]{8,1024}\Z")
#: KV v1 keeps an advisory `ttl` key in the data; it is the lease duration, not part of the token
_KV1_KEYS = frozenset({"ttl"})


def exchange(request: ExchangeRequest) -> IssuedToken:
    inputs = request.provider_inputs
    url = inputs.url("vault-url", required=True)
    role = inputs.text("vault-role", pattern=_ROLE, allowed="a Vault role name", required=True)
    mount = inputs.text(
        "vault-auth-mount", pattern=_MOUNT, allowed="a mount path such as jwt or github-actions"
    )
    namespace = inputs.text(
        "vault-namespace", pattern=_NAMESPACE, allowed="a namespace path such as admin/team-a"
    )
    path = inputs.text(
        "vault-secret-path",
        pattern=_SECRET_PATH,
        allowed="the secret's API path, e.g. secret/data/connectors/hubspot (KV v2 has /data/)",
        required=True,
    )
    assert url is not None
    assert role is not None
    assert path is not None
    mount = mount or "jwt"
    audience = request.inputs.audience or url
    headers = {"X-Vault-Namespace": namespace} if namespace else {}
    claims: dict[str, str] = {}

    def login() -> Request:
        id_token = request.id_token(audience)
        claims.update(job_claims(id_token))
        return json_request(
            "POST", f"{url}/v1/auth/{mount}/login", {"role": role, "jwt": id_token}, headers
        )

    answer = fetch(login, deadline=request.deadline)
    if answer.status != 200:
        raise _login_error(answer, role=role, mount=mount, audience=audience, claims=claims)
    auth = answer.json_object("Vault").get("auth")
    vault_token = auth.get("client_token") if isinstance(auth, dict) else None
    if not isinstance(vault_token, str) or not _VAULT_TOKEN.match(vault_token):
        raise ProviderError(f"Vault answered the login at {describe_url(url)} without a token")
    token_ttl = auth.get("lease_duration") if isinstance(auth, dict) else None
    state = {
        "url": url,
        "vault_token": vault_token,
        **({"namespace": namespace} if namespace else {}),
    }
    try:
        return _connector_token(url, path, vault_token, headers, token_ttl, state, request)
    except Exception:
        # the exchange hands nothing over: end the Vault token (and its leases) now
        with contextlib.suppress(Exception):
            _revoke_self(url, vault_token, headers, request.deadline.within(5))
        raise


def revoke(request: RevokeRequest) -> str:
    url = request.state.get("url") or request.provider_inputs.url("vault-url")
    vault_token = request.state.get("vault_token")
    if not url or not vault_token:
        return "nothing to revoke: no Vault token was handed over by the exchange step"
    namespace = request.state.get("namespace")
    headers = {"X-Vault-Namespace": namespace} if namespace else {}
    outcome = _revoke_self(url, vault_token, headers, request.deadline)
    lease = request.state.get("lease_id")
    with_lease = f" and its lease {neutralize(lease, limit=120)}" if lease else ""
    return f"{outcome}{with_lease}" if outcome.startswith("revoked") else outcome


PROVIDER = Provider(name="vault", exchange=exchange, revoke=revoke, token_type="Bearer")  # noqa: S106


# --- internals -------------------------------------------------------------------------------


def _connector_token(
    url: str,
    path: str,
    vault_token: str,
    headers: dict[str, str],
    token_ttl: object,
    state: dict[str, str],
    request: ExchangeRequest,
) -> IssuedToken:
    secret = _read(url, path, vault_token, headers, request)
    now = datetime.datetime.now(datetime.timezone.utc)
    lease_id = secret.get("lease_id")
    lease = secret.get("lease_duration")
    other_expiries = []
    if isinstance(lease, int) and not isinstance(lease, bool) and lease > 0:
        other_expiries.append(now + datetime.timedelta(seconds=lease))
        if isinstance(token_ttl, int) and not isinstance(token_ttl, bool) and token_ttl > 0:
            other_expiries.append(now + datetime.timedelta(seconds=token_ttl))
    if isinstance(lease_id, str) and lease_id:
        state["lease_id"] = lease_id[:512]
    return to_issued_token(
        _connector_fields(secret, path),
        provider="vault",
        what=f"the Vault secret {path}",
        other_expiries=other_expiries,
        extra_secrets=(vault_token,),
        revoke_state=state,
        now=now,
    )


def _read(
    url: str, path: str, vault_token: str, headers: dict[str, str], request: ExchangeRequest
) -> dict[str, object]:
    read_headers = {**headers, "X-Vault-Token": vault_token}
    answer = fetch(
        lambda: Request("GET", f"{url}/v1/{path}", read_headers), deadline=request.deadline
    )
    if answer.status == 403:
        raise ProviderError(
            f"the Vault token's policies do not allow reading {path}: add "
            f'path "{path}" {{ capabilities = ["read"] }} to a policy in the role\'s '
            "token_policies",
            denied=True,
        )
    if answer.status == 404:
        raise ProviderError(
            f"Vault has no secret at {path}: check vault-secret-path (a KV v2 path has /data/ "
            "after the mount, e.g. secret/data/connectors/hubspot)"
        )
    if answer.status != 200:
        raise ProviderError(f"Vault could not read {path}: {_vault_errors(answer)}")
    return answer.json_object("Vault")


def _connector_fields(secret: dict[str, object], path: str) -> ConnectorSecret:
    data = secret.get("data")
    what = f"the Vault secret {path}"
    if not isinstance(data, dict):
        raise ProviderError(f"{what} has no data")
    metadata = None
    inner = data.get("data")
    if isinstance(inner, dict) and isinstance(data.get("metadata"), dict):  # KV v2
        kv_metadata = data["metadata"]
        custom = kv_metadata.get("custom_metadata") if isinstance(kv_metadata, dict) else None
        if isinstance(custom, dict):
            metadata = metadata_from_mapping(custom, where=f"the custom_metadata of {path}")
        data = inner
    return read_connector_fields(data, what=what, metadata=metadata, also_allowed=_KV1_KEYS)


def _revoke_self(url: str, vault_token: str, headers: dict[str, str], deadline: Deadline) -> str:
    answer = fetch(
        lambda: Request(
            "POST", f"{url}/v1/auth/token/revoke-self", {**headers, "X-Vault-Token": vault_token}
        ),
        deadline=deadline,
    )
    if answer.status in (200, 204):
        return "revoked the Vault token"
    if answer.status == 403:  # expired or already revoked: Vault no longer knows it
        return "the Vault token had already expired or been revoked"
    raise ProviderError(f"Vault could not revoke the token: {_vault_errors(answer)}")


def _login_error(
    answer: Response, *, role: str, mount: str, audience: str, claims: dict[str, str]
) -> ProviderError:
    errors = _vault_errors(answer)
    details = dict(claims)
    if (
        answer.status in (404, 405)
        or "no handler for route" in errors
        or (answer.status == 403 and errors == "permission denied")
    ):
        # a login needs no token: "permission denied" means nothing is mounted there
        return ProviderError(
            f"no auth method is mounted at auth/{mount}: check vault-auth-mount and "
            f"vault-namespace (Vault said: {errors})"
        )
    if "could not be found" in errors and "role" in errors:
        return ProviderError(f"Vault has no role {role} at auth/{mount}: check vault-role")
    if "audience" in errors:
        return ProviderError(
            f"the role {role} does not accept the audience {neutralize(audience)}: set the "
            "`audience` input to one of the role's bound_audiences, or add it there",
            denied=True,
            details=details,
        )
    bound = re.search(r'claim \\?"([A-Za-z0-9_.:-]{1,64})\\?" does not match', errors)
    if bound:
        claim = bound.group(1)
        value = claims.get(claim, "(not in the token)")
        return ProviderError(
            f"the role {role}'s bound_claims reject this job: its {claim} is {value!r}; "
            "change bound_claims or run the job where they match",
            denied=True,
            details=details,
        )
    if "issuer" in errors or "signature" in errors or "verify" in errors:
        return ProviderError(
            f"Vault did not accept the job's ID token at auth/{mount} ({errors}): check the "
            "auth method's bound_issuer and jwks_url / oidc_discovery_url "
            "(https://token.actions.githubusercontent.com)",
            denied=True,
            details=details,
        )
    return ProviderError(
        f"Vault refused the login with role {role} at auth/{mount} "
        f"(HTTP {answer.status}): {errors}",
        denied=answer.status in (400, 403),
        details=details,
    )


def _vault_errors(answer: Response) -> str:
    """Vault's ``{"errors": [...]}`` as one neutralized line (or the status)."""
    try:
        body = answer.json_object("Vault")
    except Exception:
        return f"HTTP {answer.status}"
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        return neutralize("; ".join(str(e) for e in errors[:3]), limit=300)
    return f"HTTP {answer.status}"
