"""The broker as an OAuth client of a connector's provider: token requests and revocation.

:class:`AuthorizationServerClient` sends one request to a provider's token endpoint (RFC 6749
§4.1.3 authorization code with PKCE, §6 refresh, §4.4 client credentials) or its
revocation endpoint (RFC 7009), bounded in size and time (``bounded_http``), and reads
the answer strictly:

- a 2xx JSON object (duplicate keys refused) with a non-empty ``access_token`` at the
  connector's ``access_token_path``, a bearer ``token_type`` when one is given, and an
  integer ``expires_in`` when one is given; ``refresh_token``, when present, replaces
  the stored one (rotation);
- Slack's ``{"ok": false, "error": …}`` answered with status 200 is an error too;
- ``invalid_grant`` (and Slack's ``invalid_refresh_token``/``token_revoked``) means the
  grant is dead: :class:`AuthorizationServerError` kind ``invalid_grant``;
- 5xx, 429, a timeout or an unreachable host: kind ``unavailable``, with the
  provider's ``Retry-After`` when it sent one;
- any other refusal: kind ``refused``; a body that is not what RFC 6749 §5.1 says,
  or that reading it fails on in any way: kind ``invalid_response``, never another
  exception.

An error's text names the provider's error *code* only (checked against
``[a-z0-9_.]``): never a URL, a header, a body or its ``error_description``, which
could echo a secret.

Public API: :class:`AuthorizationServerClient`, :class:`AuthorizationServerTokens`,
:class:`AuthorizationServerError`.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlencode

import requests

from jobtoken.broker.connectors.model import OAuthSettings, require_endpoint
from jobtoken.broker.errors import UpstreamFailure
from jobtoken.broker.upstream.bounded_http import BoundedHttpError, BoundedResponse, request_bounded
from jobtoken.wire.grammar import parse_ascii_int
from jobtoken.wire.strict_json import loads_strict

__all__ = ["AuthorizationServerClient", "AuthorizationServerError", "AuthorizationServerTokens"]

MAX_RESPONSE_BYTES = 64 * 1024
MAX_TOKEN_CHARS = 8192
#: the longest access-token lifetime believed (ten years); longer is a malformed answer
MAX_EXPIRES_IN = 10 * 366 * 24 * 3600
#: digits read of a quoted expires_in (more than the range holds: a long one is out of range)
_EXPIRES_IN_DIGITS = 20
_ERROR_CODE = re.compile(r"[a-z0-9_.]{1,64}\Z")
_DEAD_GRANT = frozenset({"invalid_grant", "invalid_refresh_token", "token_revoked"})
_BEARER_TYPES = frozenset({"bearer", "bot", "user"})  # Slack names its bearer tokens

Failure = Literal["invalid_grant", "unavailable", "refused", "invalid_response"]


class AuthorizationServerError(UpstreamFailure):
    """A token or revocation request failed; ``kind`` says how (module docstring)."""

    kind: Failure

    def __init__(self, kind: Failure, text: str, *, retry_after: int = 0) -> None:
        super().__init__(kind, text, retry_after=retry_after)


@dataclass(frozen=True, repr=False)
class AuthorizationServerTokens:
    """A token response, read. ``repr`` shows no token."""

    access_token: str
    expires_at: int
    #: the rotated refresh token; "" when the response carried none (keep the old one)
    refresh_token: str = ""
    #: the API base URL the response named (``base_url_field``), or ""
    base_url: str = ""
    scope: str = ""

    def __repr__(self) -> str:
        return f"AuthorizationServerTokens(expires_at={self.expires_at})"


class AuthorizationServerClient:
    """Token and revocation requests to providers. Thread-safe."""

    def __init__(self, *, timeout_seconds: float = 10.0) -> None:
        self._timeout = timeout_seconds
        self._session = requests.Session()
        self._session.trust_env = False  # no HTTP(S)_PROXY, .netrc or CA bundle from env

    def close(self) -> None:
        self._session.close()

    def refresh(
        self, oauth: OAuthSettings, secret: str, refresh_token: str, *, timeout: float = 0
    ) -> AuthorizationServerTokens:
        fields = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._token(oauth, secret, fields, timeout)

    def client_credentials(
        self, oauth: OAuthSettings, secret: str, *, timeout: float = 0
    ) -> AuthorizationServerTokens:
        fields = {"grant_type": "client_credentials"}
        if oauth.scopes:
            fields["scope"] = oauth.scope_separator.join(oauth.scopes)
        return self._token(oauth, secret, fields, timeout)

    def authorization_code(
        self, oauth: OAuthSettings, secret: str, *, code: str, redirect_uri: str, verifier: str
    ) -> AuthorizationServerTokens:
        fields = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        return self._token(oauth, secret, fields, 0)

    def revoke(self, oauth: OAuthSettings, secret: str, token: str, hint: str) -> None:
        """RFC 7009: revoke ``token`` (``hint``: access_token or refresh_token)."""
        if not oauth.revoke_url:
            raise AuthorizationServerError("refused", "the provider has no revocation endpoint")
        fields = {"token": token, "token_type_hint": hint}
        response = self._post(oauth, oauth.revoke_url, secret, fields, 0)
        if response.status != 200:
            raise _error_of(response)

    # -- internals -----------------------------------------------------------------------
    def _token(
        self, oauth: OAuthSettings, secret: str, fields: dict[str, str], timeout: float
    ) -> AuthorizationServerTokens:
        now = int(time.time())
        response = self._post(oauth, oauth.token_url, secret, fields, timeout)
        try:
            if not 200 <= response.status < 300:
                raise _error_of(response)
            body = _json_object(response.body)
            if body.get("ok") is False:  # Slack answers its errors with 200
                raise _error_of(response, body)
            return _tokens(oauth, body, now)
        except AuthorizationServerError:
            raise
        except Exception as exc:  # whatever reading the answer raised: it is malformed
            raise AuthorizationServerError(
                "invalid_response", f"the provider's answer cannot be read ({type(exc).__name__})"
            ) from None

    def _post(
        self, oauth: OAuthSettings, url: str, secret: str, fields: dict[str, str], timeout: float
    ) -> BoundedResponse:
        headers = {"Accept": "application/json", "User-Agent": "jobtoken-broker"}
        fields = dict(fields)
        if oauth.client_auth == "client_secret_basic":  # RFC 6749 §2.3.1: each part encoded
            pair = f"{quote(oauth.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            fields["client_id"], fields["client_secret"] = oauth.client_id, secret
        if oauth.token_body == "json":  # noqa: S105 (a body format)
            headers["Content-Type"] = "application/json"
            body = json.dumps(fields).encode()
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode(fields).encode("ascii")
        seconds = timeout or self._timeout
        try:
            return request_bounded(
                self._session,
                "POST",
                url,
                headers=headers,
                body=body,
                max_bytes=MAX_RESPONSE_BYTES,
                connect_timeout=min(seconds, 5.0),
                read_timeout=seconds,
                total_seconds=seconds,
            )
        except BoundedHttpError as exc:
            if exc.kind == "too_large":
                raise AuthorizationServerError(
                    "invalid_response", f"the provider {exc.detail}"
                ) from None
            raise AuthorizationServerError("unavailable", f"the provider {exc.detail}") from None


def _json_object(body: bytes) -> dict[str, object]:
    try:
        value = loads_strict(body)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise AuthorizationServerError(
            "invalid_response", "the provider's answer is not a JSON object"
        )
    return value


def _error_of(
    response: BoundedResponse, body: Mapping[str, object] | None = None
) -> AuthorizationServerError:
    if response.status >= 500 or response.status == 429:
        # delay-seconds only (an HTTP-date or anything else: 0, the caller's own wait)
        seconds = parse_ascii_int(response.headers.get("Retry-After", ""), 5) or 0
        return AuthorizationServerError(
            "unavailable", f"the provider answered {response.status}", retry_after=seconds
        )
    if body is None:
        try:
            body = _json_object(response.body)
        except AuthorizationServerError:
            body = {}
    code = body.get("error")
    code = code if isinstance(code, str) and _ERROR_CODE.match(code) else "unknown"
    if code in _DEAD_GRANT:
        return AuthorizationServerError("invalid_grant", f"the provider answered {code}")
    return AuthorizationServerError("refused", f"the provider answered {response.status} {code}")


def _tokens(
    oauth: OAuthSettings, body: Mapping[str, object], now: int
) -> AuthorizationServerTokens:
    holder: Mapping[str, object] = body
    for name in oauth.access_token_path[:-1]:
        inner = holder.get(name)
        if not isinstance(inner, dict):
            raise AuthorizationServerError(
                "invalid_response", f"the token response has no {name} object"
            )
        holder = inner
    access = holder.get(oauth.access_token_path[-1])
    if not isinstance(access, str) or not 0 < len(access) <= MAX_TOKEN_CHARS:
        raise AuthorizationServerError(
            "invalid_response", "the token response has no usable access_token"
        )
    token_type = holder.get("token_type", body.get("token_type", "bearer"))
    if not isinstance(token_type, str) or token_type.lower() not in _BEARER_TYPES:
        raise AuthorizationServerError(
            "invalid_response", "the token response's token_type is not bearer"
        )
    expires_in = holder.get("expires_in", body.get("expires_in", oauth.default_expires_in))
    if isinstance(expires_in, str):  # some providers quote it
        expires_in = parse_ascii_int(expires_in, _EXPIRES_IN_DIGITS)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise AuthorizationServerError(
            "invalid_response", "the token response's expires_in is not a number"
        )
    if not 0 < expires_in <= MAX_EXPIRES_IN:
        raise AuthorizationServerError(
            "invalid_response", "the token response's expires_in is out of range"
        )
    refresh = holder.get("refresh_token", body.get("refresh_token", ""))
    if not isinstance(refresh, str) or len(refresh) > MAX_TOKEN_CHARS:
        raise AuthorizationServerError(
            "invalid_response", "the token response's refresh_token is malformed"
        )
    base_url = ""
    if oauth.base_url_field:
        value = body.get(oauth.base_url_field)
        try:
            if not isinstance(value, str) or len(value) > 512:
                raise ValueError
            require_endpoint(value, oauth.base_url_field)
        except ValueError:
            raise AuthorizationServerError(
                "invalid_response", f"the token response has no https {oauth.base_url_field}"
            ) from None
        base_url = value.rstrip("/")
    scope = holder.get("scope", body.get("scope", ""))
    return AuthorizationServerTokens(
        access_token=access,
        expires_at=now + expires_in,
        refresh_token=refresh,
        base_url=base_url,
        scope=scope if isinstance(scope, str) else "",
    )
