"""The storage side of the Authlib provider (``support/oauth_provider.py``): the client, the
token and code records, the in-memory ledger with its counters, and the Authlib grant,
revocation and bearer-validator subclasses that read and write it.

Everything a request thread touches is under ``ProviderState._lock``. A refresh token and
an authorization code are *claimed* under the lock before Authlib issues anything for
them, so two concurrent requests with the same one get one answer and one
``invalid_grant``, as at a provider that rotates strictly: a broker that refreshes twice
at once is caught by ``reused_refresh_attempts``, not silently served twice.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge

SCOPES = "contacts.read contacts.write"
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
#: how long an authorization code may wait for its exchange
CODE_SECONDS = 60


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # a request must name its loopback redirect: the port varies

    def get_allowed_scope(self, scope: str) -> str:
        """The requested scopes this client may have; all of them when none is asked for."""
        allowed = SCOPES.split()
        if not scope:
            return SCOPES
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """RFC 8252 §7.3 and §8.3: ``http://127.0.0.1:<any port>/callback`` or the same
        with ``localhost``, nothing else."""
        try:
            parts = urlsplit(redirect_uri)
            port = parts.port
        except ValueError:
            return False
        return (
            (parts.scheme, parts.path) == ("http", "/callback")
            and parts.hostname in ("127.0.0.1", "localhost")
            and port is not None
            and "@" not in parts.netloc
            and not (parts.query or parts.fragment)
        )

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in CLIENT_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token", "client_credentials")


@dataclass
class Token:
    """One token response: an access token and, except for client credentials, a refresh
    token. ``refresh_revoked`` is set when the refresh token is used (rotation), revoked
    (RFC 7009) or the user disconnects the app."""

    client_id: str
    user: str | None
    scope: str
    access_token: str
    refresh_token: str | None
    issued_at: float
    expires_in: int
    access_revoked: bool = False
    refresh_revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.access_revoked

    def is_current(self) -> bool:
        return not (self.is_expired() or self.is_revoked())


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str
    code_challenge_method: str
    issued_at: float = field(default_factory=time.time)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


def fingerprint(token: str) -> str:
    """The key of ``stale_token_uses``: SHA-256 of the token, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class ProviderState:
    """The client, the tokens and codes, the counters and switches (``OAuthProvider``'s base)."""

    access_token_seconds: int = 3600
    username: str = "ada"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    client_id: str = field(default_factory=lambda: "client-" + secrets.token_hex(6))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    #: while True the token endpoint answers 503
    down: bool = False
    #: seconds each token request waits before it is answered
    delay: float = 0.0
    #: the JSON body the next token request gets (with 200) instead of a token; once
    answer_once: dict[str, object] | None = None
    #: a refresh also revokes the access token issued with the refresh token it used
    #: (off: outstanding access tokens stay good until they expire, as at HubSpot, Slack
    #: and Google; on: a stricter provider, where calls in flight with it get a 401)
    revoke_access_on_refresh: bool = False
    #: requests to the token endpoint, answered or not
    token_requests: int = 0
    #: successful grants, by grant type
    refreshes: int = 0
    code_grants: int = 0
    client_credentials_grants: int = 0
    #: a refresh token presented after it was used, revoked or disconnected
    reused_refresh_attempts: int = 0
    #: successful RFC 7009 revocation requests
    revocations: int = 0
    #: API requests let through, and those refused with 401
    api_ok: int = 0
    api_auth_failures: int = 0
    #: SHA-256 of an access token -> API requests made with it after it expired or was revoked
    stale_token_uses: dict[str, int] = field(default_factory=dict)
    #: every access and refresh token ever issued, for leak scans
    issued_secrets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._client = Client(self.client_id, self.client_secret)
        self._tokens: list[Token] = []
        self._codes: dict[str, Code] = {}

    # -- for tests ------------------------------------------------------------------------
    def issue_refresh_token(self, scope: str = SCOPES) -> str:
        """A refresh token for the test user, as if they had connected the app earlier
        (no grant is counted)."""
        token = Token(
            client_id=self.client_id,
            user=self.username,
            scope=scope,
            access_token=secrets.token_urlsafe(32),
            refresh_token=secrets.token_urlsafe(32),
            issued_at=time.time(),
            expires_in=self.access_token_seconds,
        )
        self._store(token)
        assert token.refresh_token is not None
        return token.refresh_token

    def revoke_all_refresh_tokens(self) -> None:
        """The user disconnected the app: every refresh token is dead (access tokens live on
        until they expire, as at most providers)."""
        with self._lock:
            for token in self._tokens:
                token.refresh_revoked = True

    def current_access_tokens(self) -> list[str]:
        """Access tokens that are neither expired nor revoked, oldest first."""
        with self._lock:
            return [t.access_token for t in self._tokens if t.is_current()]

    # -- storage ----------------------------------------------------------------------------
    def _store(self, token: Token) -> None:
        with self._lock:
            self._tokens.append(token)
            self.issued_secrets += [token.access_token, *filter(None, [token.refresh_token])]

    def _save_token(self, data: dict[str, Any], req: Any) -> None:
        """Authlib's ``save_token``: keep the token and count the grant."""
        token = Token(
            client_id=req.client.client_id,
            user=req.user,
            scope=data.get("scope", ""),
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token"),
            issued_at=time.time(),
            expires_in=int(data["expires_in"]),
        )
        counter = {
            "refresh_token": "refreshes",
            "authorization_code": "code_grants",
            "client_credentials": "client_credentials_grants",
        }[req.payload.grant_type]
        with self._lock:
            self._store(token)
            setattr(self, counter, getattr(self, counter) + 1)

    def _find(self, value: str, kind: str) -> Token | None:
        if not value:
            return None
        with self._lock:
            for token in self._tokens:
                if getattr(token, kind) == value:
                    return token
        return None

    def _claim_refresh_token(self, value: str, client_id: str) -> Token | None:
        """Take a live refresh token out of use at once; count a used or revoked one."""
        with self._lock:
            token = self._find(value, "refresh_token")
            if token is None or token.client_id != client_id:
                return None
            if token.refresh_revoked:
                self.reused_refresh_attempts += 1
                return None
            token.refresh_revoked = True
            return token

    def _claim_code(self, value: str, client_id: str) -> Code | None:
        """A code is good once: taken out of the store by the first exchange that names it."""
        with self._lock:
            code = self._codes.get(value)
            if code is None or code.client_id != client_id:
                return None
            del self._codes[value]
        return code if time.time() < code.issued_at + CODE_SECONDS else None

    def _count_api(self, presented: str, ok: bool) -> None:
        with self._lock:
            if ok:
                self.api_ok += 1
                return
            self.api_auth_failures += 1
            token = self._find(presented, "access_token")
            if token is not None and not token.is_current():
                digest = fingerprint(presented)
                self.stale_token_uses[digest] = self.stale_token_uses.get(digest, 0) + 1


# -- Authlib's extension points, bound to one provider's state ------------------------------


class S256Required(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 on every authorization request.

    Authlib's ``CodeChallenge(required=True)`` alone requires a ``code_verifier`` only from
    public clients (``auth_method == "none"``), lets an authorization request without a
    ``code_challenge`` through, and takes an absent method as ``plain``. Here the request
    must carry a challenge and ``code_challenge_method=S256``; the code keeps the
    challenge, so its exchange needs the verifier whatever the client.
    """

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar = ["S256"]

    def __init__(self) -> None:
        super().__init__(required=True)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE is required")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)


def code_grant(state: ProviderState) -> type[grants.AuthorizationCodeGrant]:
    class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS: ClassVar = CLIENT_AUTH_METHODS

        def save_authorization_code(self, code: str, req: Any) -> None:
            with state._lock:
                state._codes[code] = Code(
                    code,
                    req.client.client_id,
                    req.payload.redirect_uri,
                    req.scope or SCOPES,
                    req.user,
                    req.payload.data.get("code_challenge", ""),
                    req.payload.data.get("code_challenge_method", ""),
                )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            return state._claim_code(code, client.client_id)

        def delete_authorization_code(self, authorization_code: Code) -> None:
            """Already gone: ``query_authorization_code`` took it."""

        def authenticate_user(self, authorization_code: Code) -> str:
            return authorization_code.user

    return CodeGrant


def client_credentials_grant() -> type[grants.ClientCredentialsGrant]:
    class ClientCredentials(grants.ClientCredentialsGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS: ClassVar = CLIENT_AUTH_METHODS  # Authlib's: basic only

    return ClientCredentials


def refresh_grant(state: ProviderState) -> type[grants.RefreshTokenGrant]:
    class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
        INCLUDE_NEW_REFRESH_TOKEN = True
        TOKEN_ENDPOINT_AUTH_METHODS: ClassVar = CLIENT_AUTH_METHODS
        _claimed: Token | None = None

        def validate_token_request(self) -> None:
            try:
                super().validate_token_request()
            except Exception:
                if self._claimed is not None:  # e.g. a wider scope asked for: still usable
                    with state._lock:
                        self._claimed.refresh_revoked = False
                raise

        def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
            self._claimed = state._claim_refresh_token(refresh_token, self.request.client.client_id)
            return self._claimed

        def authenticate_user(self, credential: Token) -> str | None:
            return credential.user

        def revoke_old_credential(self, credential: Token) -> None:
            with state._lock:  # the used refresh token goes; its access token, if told so
                credential.refresh_revoked = True
                credential.access_revoked = credential.access_revoked or (
                    state.revoke_access_on_refresh
                )

    return RefreshGrant


def revocation_endpoint(state: ProviderState) -> type[RevocationEndpoint]:
    class Revocation(RevocationEndpoint):  # type: ignore[misc]
        CLIENT_AUTH_METHODS: ClassVar = CLIENT_AUTH_METHODS

        def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
            return state._find(token_string, "refresh_token") or state._find(
                token_string, "access_token"
            )

        def revoke_token(self, token: Token, req: Any) -> None:
            """A refresh token takes its access token with it (RFC 7009 §2.1); an access
            token goes alone."""
            presented = req.form.get("token")
            with state._lock:
                token.access_revoked = True
                if presented == token.refresh_token:
                    token.refresh_revoked = True
                state.revocations += 1

    return Revocation


def bearer_validator(state: ProviderState) -> BearerTokenValidator:
    class Validator(BearerTokenValidator):  # type: ignore[misc]
        def authenticate_token(self, token_string: str) -> Token | None:
            return state._find(token_string, "access_token")

    return Validator(realm="contacts")
