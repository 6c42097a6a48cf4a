"""The Authlib provider stand-in, driven by Authlib's own OAuth client: what the broker's
OAuth tests rely on it to do (PKCE, rotate, refuse reuse, expire, revoke, go down)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from support.loopback import LoopbackServer
from support.oauth_provider import (
    BrowserFlowError,
    OAuthProvider,
    fingerprint,
    follow_to_callback,
    scripted_browser_login_and_consent,
)

LIFETIME = 2
VERIFIER = "verifier-" + "v" * 55


@pytest.fixture
def provider() -> Iterator[OAuthProvider]:
    with OAuthProvider(access_token_seconds=LIFETIME) as running:
        yield running


class Callback(LoopbackServer):
    """A CLI's loopback listener: records the query of each ``GET /callback``."""

    def __init__(self) -> None:
        self.queries: list[dict[str, list[str]]] = []

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener.queries.append(parse_qs(urlsplit(self.path).query))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def client(provider: OAuthProvider, **options: Any) -> OAuth2Client:
    return OAuth2Client(provider.client_id, provider.client_secret, trust_env=False, **options)


def authorize(provider: OAuthProvider, oauth: OAuth2Client, **params: str) -> tuple[str, str]:
    """The browser's part: (the callback Location, the state sent)."""
    url, state = oauth.create_authorization_url(provider.authorize_url, **params)
    location = scripted_browser_login_and_consent(url, provider.username, provider.password)
    return location, state


def pkce() -> dict[str, str]:
    return {
        "code_challenge": create_s256_code_challenge(VERIFIER),
        "code_challenge_method": "S256",
    }


def contacts(provider: OAuthProvider, access_token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    return httpx.get(provider.api_url + "/v1/contacts", headers=headers, trust_env=False)


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_the_code_flow_with_pkce_through_the_scripted_browser(
    provider: OAuthProvider, auth_method: str
) -> None:
    with Callback() as listener:  # any loopback port is a valid redirect (RFC 8252 §7.3)
        redirect_uri = listener.url + "/callback"
        oauth = client(
            provider, redirect_uri=redirect_uri, scope="contacts.read",
            token_endpoint_auth_method=auth_method,
        )  # fmt: skip
        location, state = authorize(provider, oauth, **pkce())
        assert location.startswith(redirect_uri + "?")
        assert follow_to_callback(location).status_code == 200
        query = listener.queries[0]
    assert query["state"] == [state]
    token = oauth.fetch_token(
        provider.token_url, authorization_response=location, state=state, code_verifier=VERIFIER
    )
    assert token["token_type"].lower() == "bearer"
    assert token["expires_in"] == LIFETIME
    assert token["scope"] == "contacts.read"
    assert token["refresh_token"]
    assert provider.code_grants == 1
    assert provider.current_access_tokens() == [token["access_token"]]
    assert contacts(provider, token["access_token"]).json()["contacts"][0]["id"] == "1"
    # a code is good once
    with pytest.raises(OAuthError) as reused:
        oauth.fetch_token(provider.token_url, code=query["code"][0], code_verifier=VERIFIER)
    assert reused.value.error == "invalid_grant"
    assert provider.code_grants == 1


def test_pkce_s256_is_required(provider: OAuthProvider) -> None:
    oauth = client(provider, redirect_uri="http://127.0.0.1:45678/callback")
    for params in ({}, {"code_challenge": VERIFIER, "code_challenge_method": "plain"}):
        location, _ = authorize(provider, oauth, **params)
        assert parse_qs(urlsplit(location).query)["error"] == ["invalid_request"]
    for verifier, error in ((None, "invalid_request"), ("x" * 64, "invalid_grant")):
        location, _ = authorize(provider, oauth, **pkce())
        code = parse_qs(urlsplit(location).query)["code"][0]
        extra = {"code_verifier": verifier} if verifier else {}
        with pytest.raises(OAuthError) as refused:
            oauth.fetch_token(provider.token_url, code=code, **extra)
        assert refused.value.error == error
    assert provider.code_grants == 0


def test_a_refresh_rotates_and_a_reused_refresh_token_is_invalid_grant(
    provider: OAuthProvider,
) -> None:
    first = provider.issue_refresh_token()
    oauth = client(provider, token_endpoint_auth_method="client_secret_post")
    token = oauth.refresh_token(provider.token_url, refresh_token=first)
    assert token["refresh_token"] not in ("", first)
    assert token["expires_in"] == LIFETIME
    assert provider.refreshes == 1
    with pytest.raises(OAuthError) as reused:
        oauth.refresh_token(provider.token_url, refresh_token=first)
    assert reused.value.error == "invalid_grant"
    assert provider.reused_refresh_attempts == 1
    second = oauth.refresh_token(provider.token_url, refresh_token=token["refresh_token"])
    assert provider.refreshes == 2
    # by default an access token outlives the refresh that replaced it, until it expires
    assert contacts(provider, token["access_token"]).status_code == 200
    # a stricter provider revokes it with its refresh token
    provider.revoke_access_on_refresh = True
    third = oauth.refresh_token(provider.token_url, refresh_token=second["refresh_token"])
    assert contacts(provider, second["access_token"]).status_code == 401
    assert provider.stale_token_uses == {fingerprint(second["access_token"]): 1}
    assert third["access_token"] in provider.current_access_tokens()


def test_concurrent_refreshes_with_one_refresh_token_get_one_answer(
    provider: OAuthProvider,
) -> None:
    refresh = provider.issue_refresh_token()
    outcomes: list[str] = []
    start = threading.Barrier(6)

    def attempt() -> None:
        start.wait()
        try:
            client(provider).refresh_token(provider.token_url, refresh_token=refresh)
            outcomes.append("ok")
        except OAuthError as error:
            outcomes.append(error.error)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["invalid_grant"] * 5 + ["ok"]
    assert (provider.refreshes, provider.reused_refresh_attempts) == (1, 5)


def test_the_api_takes_only_current_tokens_and_counts_stale_ones(provider: OAuthProvider) -> None:
    token = client(provider).refresh_token(
        provider.token_url, refresh_token=provider.issue_refresh_token()
    )
    assert contacts(provider, token["access_token"]).status_code == 200
    missing = contacts(provider, None)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="contacts"'
    assert contacts(provider, "not-a-token").status_code == 401
    time.sleep(LIFETIME + 0.1)
    expired = contacts(provider, token["access_token"])
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    assert contacts(provider, token["access_token"]).status_code == 401
    # only a token this provider issued and that has lapsed is a stale use
    assert provider.stale_token_uses == {fingerprint(token["access_token"]): 2}
    assert (provider.api_ok, provider.api_auth_failures) == (1, 4)
    assert provider.current_access_tokens() == []


def test_posting_a_contact_needs_the_write_scope(provider: OAuthProvider) -> None:
    full = client(provider).refresh_token(
        provider.token_url, refresh_token=provider.issue_refresh_token()
    )
    read_only = client(provider).refresh_token(
        provider.token_url, refresh_token=provider.issue_refresh_token("contacts.read")
    )
    url = provider.api_url + "/v1/contacts"
    created = httpx.post(
        url, json={"name": "Mary Jackson"},
        headers={"Authorization": f"Bearer {full['access_token']}"},
    )  # fmt: skip
    assert (created.status_code, created.json()["name"]) == (201, "Mary Jackson")
    forbidden = httpx.post(
        url, json={"name": "Mary Jackson"},
        headers={"Authorization": f"Bearer {read_only['access_token']}"},
    )  # fmt: skip
    assert forbidden.status_code == 403
    assert 'error="insufficient_scope"' in forbidden.headers["WWW-Authenticate"]
    assert (provider.api_ok, provider.api_forbidden, provider.api_auth_failures) == (1, 1, 0)


def test_down_is_503_and_issues_nothing(provider: OAuthProvider) -> None:
    refresh = provider.issue_refresh_token()
    provider.down = True
    with pytest.raises(httpx.HTTPStatusError) as down:
        client(provider).refresh_token(provider.token_url, refresh_token=refresh)
    assert down.value.response.status_code == 503
    assert provider.refreshes == 0
    provider.down = False
    assert client(provider).refresh_token(provider.token_url, refresh_token=refresh)
    assert provider.refreshes == 1


def test_a_disconnected_app_s_refresh_token_is_invalid_grant(provider: OAuthProvider) -> None:
    refresh = provider.issue_refresh_token()
    provider.revoke_all_refresh_tokens()
    with pytest.raises(OAuthError) as revoked:
        client(provider).refresh_token(provider.token_url, refresh_token=refresh)
    assert revoked.value.error == "invalid_grant"
    assert (provider.refreshes, provider.reused_refresh_attempts) == (0, 1)


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials(provider: OAuthProvider, auth_method: str) -> None:
    oauth = client(provider, token_endpoint_auth_method=auth_method)
    token = oauth.fetch_token(provider.token_url, grant_type="client_credentials")
    assert "refresh_token" not in token
    assert token["expires_in"] == LIFETIME
    assert contacts(provider, token["access_token"]).status_code == 200
    assert provider.client_credentials_grants == 1
    wrong = OAuth2Client(provider.client_id, "wrong", trust_env=False)
    with pytest.raises(OAuthError) as refused:
        wrong.fetch_token(provider.token_url, grant_type="client_credentials")
    assert refused.value.error == "invalid_client"


def test_rfc7009_revocation(provider: OAuthProvider) -> None:
    oauth = client(provider)
    token = oauth.refresh_token(provider.token_url, refresh_token=provider.issue_refresh_token())
    assert oauth.revoke_token(provider.revoke_url, token["access_token"]).status_code == 200
    assert contacts(provider, token["access_token"]).status_code == 401
    # revoking the refresh token ends it too
    oauth.revoke_token(provider.revoke_url, token["refresh_token"], token_type_hint="refresh_token")
    with pytest.raises(OAuthError) as revoked:
        oauth.refresh_token(provider.token_url, refresh_token=token["refresh_token"])
    assert revoked.value.error == "invalid_grant"
    assert provider.revocations == 2


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        "http://localhost.evil.example:45678/callback",  # localhost itself is a loopback host
        "https://127.0.0.1:45678/callback",
        "http://127.0.0.1:45678/other",
        "http://127.0.0.1.evil.example:45678/callback",
        "http://evil.example@127.0.0.1:45678/callback",
    ],
)
def test_a_redirect_off_the_loopback_callback_is_refused(
    provider: OAuthProvider, redirect_uri: str
) -> None:
    oauth = client(provider, redirect_uri=redirect_uri)
    with pytest.raises(BrowserFlowError, match=r"consent page: HTTP 400.*invalid_request"):
        authorize(provider, oauth, **pkce())


def test_the_authorization_page_wants_a_logged_in_user(provider: OAuthProvider) -> None:
    oauth = client(provider, redirect_uri="http://127.0.0.1:45678/callback")
    url, _ = oauth.create_authorization_url(provider.authorize_url, **pkce())
    first = httpx.get(url, trust_env=False)
    assert first.status_code == 302
    assert first.headers["location"].startswith("/login?next=%2Fauthorize%3F")
    with pytest.raises(BrowserFlowError, match="log in: HTTP 401"):
        scripted_browser_login_and_consent(url, provider.username, "wrong")
