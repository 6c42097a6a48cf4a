"""A real OAuth 2.0 provider on loopback, built from Authlib's authorization-server classes
(Flask), with a contacts API beside it that takes only the provider's current tokens.

Nobody here wrote the protocol side: Authlib's ``AuthorizationServer`` runs the
authorization-code grant with PKCE (``CodeChallenge(required=True)``: S256 only), the
refresh-token grant with rotation, the client-credentials grant and RFC 7009
revocation; ``ResourceProtector`` with a ``BearerTokenValidator`` guards the API. This
module supplies the storage (in memory, under one lock), a test user who logs in with a
password, and the consent page.

How it is configured, as a provider that rotates refresh tokens strictly:

- a refresh revokes the refresh token it used *and* the access token issued with it,
  and issues a new pair (``INCLUDE_NEW_REFRESH_TOKEN``); a used refresh token presented
  again is ``invalid_grant`` and counted in ``reused_refresh_attempts``;
- access tokens live ``access_token_seconds``;
- any ``http://127.0.0.1:<port>/callback`` is a valid redirect (RFC 8252 §7.3).

Counters for tests: ``refreshes``, ``code_grants``, ``client_credentials_grants``,
``reused_refresh_attempts``, ``api_ok``, ``api_auth_failures``, ``stale_token_uses``
(SHA-256 of an access token → API requests made with it after it expired or was
revoked). Switches: ``down`` (the token endpoint answers 503), ``delay`` (seconds each
token request waits), ``revoke_all_refresh_tokens()`` (the user disconnected the app).

Usage::

    with OAuthProvider(access_token_seconds=3) as provider:
        refresh_token = provider.issue_refresh_token()
        provider.token_url, provider.api_url, provider.client_id, provider.client_secret
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, jsonify, redirect, request, session
from werkzeug.serving import make_server

__all__ = ["OAuthProvider", "browser_login_and_consent"]

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # its request lines carry codes

SCOPES = "contacts.read contacts.write"
CONTACTS = [
    {"id": "1", "name": "Ada Lovelace"},
    {"id": "2", "name": "Grace Hopper"},
    {"id": "3", "name": "Katherine Johnson"},
]


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(SCOPES.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        parts = urlsplit(redirect_uri)  # RFC 8252 §7.3: any port on the loopback address
        return (parts.scheme, parts.hostname, parts.path) == ("http", "127.0.0.1", "/callback")

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token", "client_credentials")


@dataclass
class Token:
    client_id: str
    user: str | None
    scope: str
    access_token: str
    refresh_token: str | None
    issued_at: int
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


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str
    code_challenge_method: str

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class OAuthProvider:
    access_token_seconds: int = 3600
    username: str = "ada"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    client_id: str = field(default_factory=lambda: "client-" + secrets.token_hex(6))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    down: bool = False
    delay: float = 0.0
    refreshes: int = 0
    code_grants: int = 0
    client_credentials_grants: int = 0
    reused_refresh_attempts: int = 0
    api_ok: int = 0
    api_auth_failures: int = 0
    stale_token_uses: dict[str, int] = field(default_factory=dict)
    #: every access token ever issued, for leak scans
    issued_secrets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._client = Client(self.client_id, self.client_secret)
        self._tokens: list[Token] = []
        self._codes: dict[str, Code] = {}
        self._server: Any = None
        self.port = 0

    # -- URLs ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def authorize_url(self) -> str:
        return self.url + "/authorize"

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    @property
    def revoke_url(self) -> str:
        return self.url + "/revoke"

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    # -- for tests ------------------------------------------------------------------------
    def connector_toml(
        self, name: str = "crm", *, credential: str = "oauth2-refresh", margin: int = 1,
        kind: str = "minted",
    ) -> str:  # fmt: skip
        """A broker's ``[connectors.NAME]`` for this provider's contacts API."""
        passthrough = "allow_passthrough = true\n" if kind == "passthrough" else ""
        return f"""
[connectors.{name}]
credential = "{credential}"
kind = "{kind}"
{passthrough}base_url = "{self.api_url}"
scopes = ["contacts.read"]
max_ttl_seconds = 600
[[connectors.{name}.routes]]
method = "GET"
path = "/v1/contacts"
scope = "contacts.read"
[connectors.{name}.oauth]
client_id = "{self.client_id}"
authorize_url = "{self.authorize_url}"
token_url = "{self.token_url}"
revoke_url = "{self.revoke_url}"
scopes = ["contacts.read"]
client_auth = "client_secret_basic"
refresh_margin_seconds = {margin}
"""

    def issue_refresh_token(self, scope: str = SCOPES) -> str:
        """A refresh token for the test user, as if they had connected the app earlier."""
        token = self._new_token(self.username, scope, with_refresh=True)
        assert token.refresh_token is not None
        return token.refresh_token

    def revoke_all_refresh_tokens(self) -> None:
        with self._lock:
            for token in self._tokens:
                token.refresh_revoked = True

    def current_access_tokens(self) -> list[str]:
        with self._lock:
            return [
                t.access_token for t in self._tokens if not t.is_expired() and not t.is_revoked()
            ]

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> OAuthProvider:
        self._server = make_server("127.0.0.1", 0, self._app(), threaded=True)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OAuthProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- storage --------------------------------------------------------------------------
    def _new_token(self, user: str | None, scope: str, *, with_refresh: bool) -> Token:
        token = Token(
            client_id=self.client_id,
            user=user,
            scope=scope,
            access_token="at_" + secrets.token_urlsafe(24),
            refresh_token="rt_" + secrets.token_urlsafe(24) if with_refresh else None,
            issued_at=int(time.time()),
            expires_in=self.access_token_seconds,
        )
        with self._lock:
            self._tokens.append(token)
            self.issued_secrets += [token.access_token, token.refresh_token or ""]
        return token

    def _save_token(self, data: dict[str, Any], req: Any) -> None:
        token = Token(
            client_id=req.client.client_id,
            user=req.user,
            scope=data.get("scope", ""),
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token"),
            issued_at=int(time.time()),
            expires_in=int(data["expires_in"]),
        )
        with self._lock:
            self._tokens.append(token)
            self.issued_secrets += [token.access_token, token.refresh_token or ""]
            grant = req.payload.grant_type
            if grant == "refresh_token":
                self.refreshes += 1
            elif grant == "authorization_code":
                self.code_grants += 1
            elif grant == "client_credentials":
                self.client_credentials_grants += 1

    def _find(self, value: str, kind: str) -> Token | None:
        with self._lock:
            for token in self._tokens:
                if getattr(token, kind) == value:
                    return token
        return None

    # -- the Flask app --------------------------------------------------------------------
    def _app(self) -> Flask:
        provider = self
        app = Flask("oauth-provider")
        app.secret_key = secrets.token_bytes(32)
        app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
        app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {
            "authorization_code": provider.access_token_seconds,
            "refresh_token": provider.access_token_seconds,
            "client_credentials": provider.access_token_seconds,
        }
        server = AuthorizationServer(
            app,
            query_client=lambda cid: provider._client if cid == provider.client_id else None,
            save_token=provider._save_token,
        )
        server.register_grant(_code_grant(provider), [CodeChallenge(required=True)])
        server.register_grant(_refresh_grant(provider))
        server.register_grant(grants.ClientCredentialsGrant)
        server.register_endpoint(_revocation(provider))
        protector = ResourceProtector()
        protector.register_token_validator(_validator(provider))

        @app.post("/login")
        def login() -> Any:
            ok_user = secrets.compare_digest(request.form.get("username", ""), provider.username)
            ok_pass = secrets.compare_digest(request.form.get("password", ""), provider.password)
            if not (ok_user and ok_pass):
                return "bad credentials", 401
            session["user"] = provider.username
            return redirect(request.args.get("next", "/"))

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize() -> Any:
            if "user" not in session:
                return redirect("/login-page?next=" + quote(request.full_path, safe=""))
            if request.method == "GET":
                server.get_consent_grant(end_user=session["user"])  # validates the request
                return (
                    "<form method=post><input type=hidden name=confirm value=yes>"
                    "<button>Allow</button></form>"
                )
            grant = server.get_consent_grant(end_user=session["user"])
            grant_user = session["user"] if request.form.get("confirm") == "yes" else None
            return server.create_authorization_response(grant=grant, grant_user=grant_user)

        @app.get("/login-page")
        def login_page() -> Any:
            return "<form method=post action=/login><input name=username><input name=password>"

        @app.post("/token")
        def token() -> Any:
            if provider.delay:
                time.sleep(provider.delay)
            if provider.down:
                return jsonify(error="temporarily_unavailable"), 503
            return server.create_token_response()

        @app.post("/revoke")
        def revoke() -> Any:
            return server.create_endpoint_response(RevocationEndpoint.ENDPOINT_NAME)

        @app.route("/api/v1/contacts", methods=["GET", "POST"])
        def contacts() -> Any:
            presented = request.headers.get("Authorization", "").partition(" ")[2]
            found = provider._find(presented, "access_token")
            try:
                protector.acquire_token(["contacts.read"])
            except OAuth2Error as exc:
                with provider._lock:
                    provider.api_auth_failures += 1
                    if found is not None:
                        digest = hashlib.sha256(presented.encode()).hexdigest()
                        provider.stale_token_uses[digest] = (
                            provider.stale_token_uses.get(digest, 0) + 1
                        )
                challenge = f'Bearer error="{exc.error}"'
                return jsonify(error=exc.error), 401, {"WWW-Authenticate": challenge}
            with provider._lock:
                provider.api_ok += 1
            if request.method == "POST":
                return jsonify(id=str(len(CONTACTS) + 1), **(request.get_json() or {})), 201
            return jsonify(contacts=CONTACTS)

        return app


def _code_grant(provider: OAuthProvider) -> type[grants.AuthorizationCodeGrant]:
    class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS: ClassVar = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code: str, req: Any) -> None:
            with provider._lock:
                provider._codes[code] = Code(
                    code,
                    req.client.client_id,
                    req.payload.redirect_uri,
                    req.payload.scope or SCOPES,
                    req.user,
                    req.payload.data.get("code_challenge", ""),
                    req.payload.data.get("code_challenge_method", ""),
                )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            with provider._lock:
                found = provider._codes.get(code)
            return found if found is not None and found.client_id == client.client_id else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            with provider._lock:
                provider._codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: Code) -> str:
            return authorization_code.user

    return CodeGrant


def _refresh_grant(provider: OAuthProvider) -> type[grants.RefreshTokenGrant]:
    class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
        INCLUDE_NEW_REFRESH_TOKEN = True
        TOKEN_ENDPOINT_AUTH_METHODS: ClassVar = ["client_secret_basic", "client_secret_post"]

        def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
            with provider._lock:
                token = provider._find(refresh_token, "refresh_token")
                if token is not None and token.refresh_revoked:
                    provider.reused_refresh_attempts += 1
                    return None
                return token

        def authenticate_user(self, credential: Token) -> str | None:
            return credential.user

        def revoke_old_credential(self, credential: Token) -> None:
            with provider._lock:
                credential.refresh_revoked = True
                credential.access_revoked = True

    return RefreshGrant


def _revocation(provider: OAuthProvider) -> type[RevocationEndpoint]:
    class Revocation(RevocationEndpoint):  # type: ignore[misc]
        CLIENT_AUTH_METHODS: ClassVar = ["client_secret_basic", "client_secret_post"]

        def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
            return provider._find(token_string, "access_token") or provider._find(
                token_string, "refresh_token"
            )

        def revoke_token(self, token: Token, req: Any) -> None:
            with provider._lock:
                token.access_revoked = token.refresh_revoked = True

    return Revocation


def _validator(provider: OAuthProvider) -> BearerTokenValidator:
    class Validator(BearerTokenValidator):  # type: ignore[misc]
        def authenticate_token(self, token_string: str) -> Token | None:
            return provider._find(token_string, "access_token")

    return Validator()


def browser_login_and_consent(authorization_url: str, username: str, password: str) -> str:
    """Act as the user's browser: log in, open the authorization URL, allow, and return
    the redirect's Location (the loopback callback with code and state), not followed."""
    base = httpx.URL(authorization_url)
    with httpx.Client(follow_redirects=False, trust_env=False, timeout=10) as browser:
        first = browser.get(authorization_url)
        assert first.status_code == 302, first.text  # to the login page
        login = browser.post(
            str(base.copy_with(path="/login", query=None)),
            data={"username": username, "password": password},
        )
        assert login.status_code == 302, login.text
        consent = browser.get(authorization_url)
        assert consent.status_code == 200, consent.text
        assert "confirm" in consent.text
        allowed = browser.post(authorization_url, data={"confirm": "yes"})
        assert allowed.status_code == 302, allowed.text
        return allowed.headers["location"]
