"""A real OAuth 2.0 provider on loopback, built from Authlib's authorization-server classes
(Flask), with a contacts API beside it that takes only the provider's current tokens.

Nobody here wrote the protocol side: Authlib's ``AuthorizationServer`` runs the
authorization-code grant with PKCE (``CodeChallenge(required=True)``, narrowed to S256 on
every request: ``S256Required``), the refresh-token grant with rotation, the
client-credentials grant and RFC 7009 revocation;
``ResourceProtector`` with a ``BearerTokenValidator`` guards the API. This module
supplies the Flask routes, a test user who logs in with a password, the consent page and
a scripted browser; ``oauth_provider_models`` the storage, counters and Authlib subclasses.

How it behaves, as a provider that rotates refresh tokens strictly:

- one confidential client (``client_id``, ``client_secret``, random per instance) that
  authenticates with ``client_secret_basic`` or ``client_secret_post``;
- any ``http://127.0.0.1:<port>/callback`` (or ``localhost``) is a valid redirect (RFC
  8252 §7.3, §8.3), nothing else;
- a refresh revokes the refresh token it used and issues a new pair; the access token
  issued with the old one stays good until it expires (as at HubSpot, Slack and
  Google), unless ``revoke_access_on_refresh`` revokes it too; a used or revoked
  refresh token presented again is ``invalid_grant`` and counted in
  ``reused_refresh_attempts``; an authorization code is good once, for
  ``CODE_SECONDS``;
- access tokens live ``access_token_seconds``;
- ``GET {api_url}/v1/contacts`` needs a current token with ``contacts.read``, ``POST``
  one with ``contacts.write``: an absent, unknown, expired or revoked token is 401 with
  ``WWW-Authenticate: Bearer realm="contacts", error="invalid_token"`` (no error when
  no token was sent), a current one without the scope 403 ``insufficient_scope``.

Counters for tests: ``token_requests``, ``refreshes``, ``code_grants``,
``client_credentials_grants``, ``reused_refresh_attempts``, ``revocations``, ``api_ok``,
``api_auth_failures`` (the 401s), ``api_forbidden`` (the 403s), ``stale_token_uses``
(SHA-256 of an access token → API requests made with it after it expired or was
revoked). Switches: ``down`` (the token endpoint answers 503), ``delay`` (seconds
each token request waits), ``answer_once`` (the next token request's body, with 200),
``revoke_all_refresh_tokens()`` (the user disconnected the app).

Usage::

    with OAuthProvider(access_token_seconds=2) as provider:
        refresh_token = provider.issue_refresh_token()  # headless set-up
        location = scripted_browser_login_and_consent(authorize_url, provider.username,
                                                      provider.password)
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin

import httpx
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc7009 import RevocationEndpoint
from flask import Flask, jsonify, redirect, request, session
from markupsafe import escape
from werkzeug.serving import BaseWSGIServer, make_server

from support.oauth_provider_models import (
    CODE_SECONDS,
    SCOPES,
    ProviderState,
    S256Required,
    bearer_validator,
    client_credentials_grant,
    code_grant,
    fingerprint,
    refresh_grant,
    revocation_endpoint,
)

__all__ = [
    "CODE_SECONDS",
    "CONTACTS",
    "SCOPES",
    "BrowserFlowError",
    "OAuthProvider",
    "browser_login_and_consent",
    "fingerprint",
    "follow_to_callback",
    "scripted_browser_login_and_consent",
]

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # its request lines carry codes

CONTACTS = [
    {"id": "1", "name": "Ada Lovelace"},
    {"id": "2", "name": "Grace Hopper"},
    {"id": "3", "name": "Katherine Johnson"},
]


@dataclass
class OAuthProvider(ProviderState):
    """``OAuthProvider(access_token_seconds=3600, username="ada", password=<random>,
    client_id=<random>, client_secret=<random>)``; counters and switches are in
    ``ProviderState``."""

    api_forbidden: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
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
        """The API's base URL: the contacts are at ``api_url + "/v1/contacts"``."""
        return self.url + "/api"

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

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> OAuthProvider:
        self._server = make_server("127.0.0.1", 0, self._app(), threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OAuthProvider:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the Flask app --------------------------------------------------------------------
    def _app(self) -> Flask:
        provider = self
        app = Flask("oauth-provider")
        app.secret_key = secrets.token_bytes(32)

        def new_token(*_: object, **__: object) -> str:
            return secrets.token_urlsafe(32)

        app.config.update(
            OAUTH2_ACCESS_TOKEN_GENERATOR=new_token,
            OAUTH2_REFRESH_TOKEN_GENERATOR=new_token,
            OAUTH2_TOKEN_EXPIRES_IN={
                grant: provider.access_token_seconds
                for grant in ("authorization_code", "refresh_token", "client_credentials")
            },
        )
        server = AuthorizationServer(
            app,
            query_client=lambda cid: provider._client if cid == provider.client_id else None,
            save_token=provider._save_token,
        )
        server.register_grant(code_grant(provider), [S256Required()])
        server.register_grant(refresh_grant(provider))
        server.register_grant(client_credentials_grant())
        server.register_endpoint(revocation_endpoint(provider))
        protector = ResourceProtector()
        protector.register_token_validator(bearer_validator(provider))

        @app.route("/login", methods=["GET", "POST"])
        def login() -> Any:
            target = request.args.get("next", "/")
            if not target.startswith("/") or target.startswith("//"):
                target = "/"  # no open redirect
            if request.method == "GET":
                return (
                    f"<form method=post action='/login?next={escape(quote(target, safe=''))}'>"
                    "<input name=username><input name=password type=password>"
                    "<button>Log in</button></form>"
                )
            ok_user = secrets.compare_digest(
                request.form.get("username", "").encode(), provider.username.encode()
            )
            ok_pass = secrets.compare_digest(
                request.form.get("password", "").encode(), provider.password.encode()
            )
            if not (ok_user and ok_pass):
                return "bad credentials", 401
            session["user"] = provider.username
            return redirect(target)

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize() -> Any:
            if "user" not in session:
                return redirect("/login?next=" + quote(request.full_path, safe=""))
            try:  # a bad client or redirect URI: 400 here; any other error goes to the redirect
                grant = server.get_consent_grant(end_user=session["user"])
            except OAuth2Error as error:
                return server.handle_error_response(request, error)
            if request.method == "GET":
                return (
                    f"<p>Allow {escape(provider.client_id)} {escape(grant.request.scope)}?</p>"
                    "<form method=post><button name=confirm value=yes>Allow</button>"
                    "<button name=confirm value=no>Deny</button></form>"
                )
            grant_user = session["user"] if request.form.get("confirm") == "yes" else None
            return server.create_authorization_response(grant=grant, grant_user=grant_user)

        @app.post("/token")
        def token() -> Any:
            with provider._lock:
                provider.token_requests += 1
            if provider.delay:
                time.sleep(provider.delay)
            if provider.down:
                return jsonify(error="temporarily_unavailable"), 503
            with provider._lock:
                garbled, provider.answer_once = provider.answer_once, None
            if garbled is not None:
                return jsonify(garbled)
            return server.create_token_response()

        @app.post("/revoke")
        def revoke() -> Any:
            return server.create_endpoint_response(RevocationEndpoint.ENDPOINT_NAME)

        @app.route("/api/v1/contacts", methods=["GET", "POST"])
        def contacts() -> Any:
            kind, _, presented = request.headers.get("Authorization", "").partition(" ")
            presented = presented.strip() if kind.lower() == "bearer" else ""
            scope = "contacts.read" if request.method == "GET" else "contacts.write"
            try:
                protector.acquire_token([scope])
            except OAuth2Error as error:
                return _refusal(provider, presented, scope, error)
            provider._count_api(presented, ok=True)
            if request.method == "POST":
                body = request.get_json(silent=True)
                if not isinstance(body, dict):
                    return jsonify(error="a JSON object is required"), 400
                return jsonify(id=str(len(CONTACTS) + 1), **body), 201
            return jsonify(contacts=CONTACTS)

        return app


def _refusal(provider: OAuthProvider, presented: str, scope: str, error: OAuth2Error) -> Any:
    """RFC 6750 §3: 401 ``invalid_token`` for a token that is not current, 401 with no error
    code when no bearer token came, 403 ``insufficient_scope``. (Authlib's own answer to a
    missing header is ``bearer ... error="missing_authorization"``, which §3.1 does not
    define.)"""
    challenge = 'Bearer realm="contacts"'
    if error.status_code == 403:
        with provider._lock:
            provider.api_forbidden += 1
        challenge += f', error="insufficient_scope", scope="{scope}"'
        return jsonify(error="insufficient_scope"), 403, {"WWW-Authenticate": challenge}
    provider._count_api(presented, ok=False)
    if not presented:
        return jsonify(error="unauthorized"), 401, {"WWW-Authenticate": challenge}
    challenge += ', error="invalid_token"'
    return jsonify(error="invalid_token"), 401, {"WWW-Authenticate": challenge}


# -- the user's browser ----------------------------------------------------------------


class BrowserFlowError(AssertionError):
    """The scripted browser did not get the answer a user's browser would have."""


def _expect(response: httpx.Response, status: int, step: str) -> httpx.Response:
    if response.status_code != status:
        raise BrowserFlowError(f"{step}: HTTP {response.status_code}: {response.text[:300]}")
    return response


def scripted_browser_login_and_consent(authorize_url: str, username: str, password: str) -> str:
    """Act as the user's browser: open the authorization URL, log in where it sends us,
    come back, allow, and return the final redirect's Location (the loopback callback
    with ``code`` and ``state``, or with ``error``) without following it."""
    with httpx.Client(follow_redirects=False, trust_env=False, timeout=10) as browser:
        to_login = _expect(browser.get(authorize_url), 302, "open the authorization URL")
        login_url = urljoin(authorize_url, to_login.headers["location"])
        _expect(browser.get(login_url), 200, "the login page")
        back = _expect(
            browser.post(login_url, data={"username": username, "password": password}),
            302,
            "log in",
        )
        consent_url = urljoin(authorize_url, back.headers["location"])
        page = browser.get(consent_url)
        if page.status_code == 302:  # an error Authlib sends to the (valid) redirect URI
            return page.headers["location"]
        _expect(page, 200, "the consent page")
        allowed = _expect(browser.post(consent_url, data={"confirm": "yes"}), 302, "allow")
        return allowed.headers["location"]


#: the name the lead's tests and the demo use
browser_login_and_consent = scripted_browser_login_and_consent


def follow_to_callback(location: str) -> httpx.Response:
    """Deliver the redirect to the loopback callback, as the browser does at the end."""
    return httpx.get(location, follow_redirects=False, trust_env=False, timeout=10)
