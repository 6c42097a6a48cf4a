"""The Authlib provider stand-in, driven by Authlib's own OAuth client: what the broker's
OAuth tests rely on it to do (rotate, refuse reuse, expire, go down)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from support.oauth_provider import OAuthProvider, browser_login_and_consent


@pytest.fixture
def provider() -> Iterator[OAuthProvider]:
    with OAuthProvider(access_token_seconds=2) as running:
        yield running


def client(provider: OAuthProvider, **options: object) -> OAuth2Client:
    return OAuth2Client(provider.client_id, provider.client_secret, trust_env=False, **options)


def test_the_code_flow_with_pkce_through_the_scripted_browser(provider: OAuthProvider) -> None:
    verifier = "v" * 64
    redirect_uri = "http://127.0.0.1:45678/callback"
    oauth = client(provider, redirect_uri=redirect_uri, scope="contacts.read")
    url, state = oauth.create_authorization_url(
        provider.authorize_url,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    location = browser_login_and_consent(url, provider.username, provider.password)
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(redirect_uri)
    assert query["state"] == [state]
    token = oauth.fetch_token(provider.token_url, code=query["code"][0], code_verifier=verifier)
    assert token["refresh_token"]
    assert provider.code_grants == 1
    # a code without its verifier is refused (PKCE is required)
    url, _ = oauth.create_authorization_url(
        provider.authorize_url,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    location = browser_login_and_consent(url, provider.username, provider.password)
    code = parse_qs(urlsplit(location).query)["code"][0]
    with pytest.raises(Exception, match=r"invalid_grant|invalid_request"):
        oauth.fetch_token(provider.token_url, code=code)


def test_a_refresh_rotates_and_a_reused_refresh_token_is_invalid_grant(
    provider: OAuthProvider,
) -> None:
    first = provider.issue_refresh_token()
    oauth = client(provider)
    token = oauth.refresh_token(provider.token_url, refresh_token=first)
    assert token["refresh_token"] != first
    assert provider.refreshes == 1
    with pytest.raises(Exception, match="invalid_grant"):
        oauth.refresh_token(provider.token_url, refresh_token=first)
    assert provider.reused_refresh_attempts == 1


def test_the_api_takes_only_current_tokens_and_counts_stale_ones(provider: OAuthProvider) -> None:
    token = client(provider).refresh_token(
        provider.token_url, refresh_token=provider.issue_refresh_token()
    )
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert httpx.get(provider.api_url + "/v1/contacts", headers=headers).status_code == 200
    time.sleep(2.1)
    assert httpx.get(provider.api_url + "/v1/contacts", headers=headers).status_code == 401
    assert list(provider.stale_token_uses.values()) == [1]
    assert (provider.api_ok, provider.api_auth_failures) == (1, 1)


def test_down_revoked_and_client_credentials(provider: OAuthProvider) -> None:
    refresh = provider.issue_refresh_token()
    provider.down = True
    down = httpx.post(provider.token_url, data={"grant_type": "refresh_token"})
    assert down.status_code == 503
    provider.down = False
    provider.revoke_all_refresh_tokens()
    with pytest.raises(Exception, match="invalid_grant"):
        client(provider).refresh_token(provider.token_url, refresh_token=refresh)
    token = client(provider).fetch_token(provider.token_url, grant_type="client_credentials")
    assert token["access_token"]
    assert provider.client_credentials_grants == 1


def test_a_redirect_off_loopback_is_refused(provider: OAuthProvider) -> None:
    oauth = client(provider, redirect_uri="https://evil.example/callback")
    url, _ = oauth.create_authorization_url(
        provider.authorize_url, code_challenge="x" * 43, code_challenge_method="S256"
    )
    with pytest.raises(AssertionError):
        browser_login_and_consent(url, provider.username, provider.password)
