"""The broker's token requests to a provider (oauth_client.py), against a loopback token
endpoint that answers what each test scripts and records every request it got.
(Authlib's real authorization server is in tests/integration/broker/test_oauth_refresh.py.)"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs

import pytest

from jobtoken.broker.connectors.model import OAuthSettings
from jobtoken.broker.upstream.oauth_client import (
    AuthorizationServerClient,
    AuthorizationServerError,
)
from support.loopback import LoopbackServer

SECRET = "s3cret/with+odd:chars"


@dataclass
class TokenEndpoint(LoopbackServer):
    status: int = 200
    body: object = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    #: (path, headers, body) of every request
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                endpoint.received.append((self.path, dict(self.headers), self.rfile.read(length)))
                raw = endpoint.body if isinstance(endpoint.body, bytes) else None
                payload = raw if raw is not None else json.dumps(endpoint.body).encode()
                self.send_response(endpoint.status)
                self.send_header("Content-Type", "application/json")
                for name, value in endpoint.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler


@pytest.fixture
def endpoint() -> TokenEndpoint:
    with TokenEndpoint() as server:
        yield server  # type: ignore[misc]


def settings(endpoint: TokenEndpoint, **changes: object) -> OAuthSettings:
    base = OAuthSettings(
        client_id="client id",
        token_url=endpoint.url + "/token",
        revoke_url=endpoint.url + "/revoke",
        scopes=("contacts.read", "contacts.write"),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_refresh_posts_the_rfc6749_form_with_the_client_in_the_body(
    endpoint: TokenEndpoint,
) -> None:
    endpoint.body = {
        "access_token": "at-1",
        "token_type": "Bearer",
        "expires_in": 1800,
        "refresh_token": "rt-2",
    }
    tokens = AuthorizationServerClient().refresh(settings(endpoint), SECRET, "rt-1")
    assert (tokens.access_token, tokens.refresh_token) == ("at-1", "rt-2")
    path, headers, body = endpoint.received[0]
    assert path == "/token"
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["Accept"] == "application/json"
    assert "Authorization" not in headers
    assert parse_qs(body.decode(), strict_parsing=True) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["rt-1"],
        "client_id": ["client id"],
        "client_secret": [SECRET],
    }
    assert "at-1" not in repr(tokens)


def test_client_secret_basic_encodes_each_part_before_joining(endpoint: TokenEndpoint) -> None:
    endpoint.body = {"access_token": "at", "token_type": "bearer", "expires_in": 60}
    AuthorizationServerClient().client_credentials(
        settings(endpoint, client_auth="client_secret_basic", scope_separator=","), SECRET
    )
    _, headers, body = endpoint.received[0]
    decoded = base64.b64decode(headers["Authorization"].removeprefix("Basic ")).decode()
    assert decoded == "client%20id:s3cret%2Fwith%2Bodd%3Achars"  # RFC 6749 §2.3.1
    assert parse_qs(body.decode()) == {
        "grant_type": ["client_credentials"],
        "scope": ["contacts.read,contacts.write"],
    }


def test_a_json_token_body_for_providers_that_want_one(endpoint: TokenEndpoint) -> None:
    endpoint.body = {"access_token": "at", "token_type": "bearer"}
    tokens = AuthorizationServerClient().authorization_code(
        settings(endpoint, token_body="json", default_expires_in=600),
        SECRET,
        code="c0de",
        redirect_uri="http://127.0.0.1:5000/callback",
        verifier="v" * 64,
    )
    _, headers, body = endpoint.received[0]
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "grant_type": "authorization_code",
        "code": "c0de",
        "redirect_uri": "http://127.0.0.1:5000/callback",
        "code_verifier": "v" * 64,
        "client_id": "client id",
        "client_secret": SECRET,
    }
    assert 595 <= tokens.expires_at - time.time() <= 600  # default_expires_in
    assert tokens.refresh_token == ""  # none sent: the old one is kept


def test_nested_tokens_and_a_base_url_from_the_response(endpoint: TokenEndpoint) -> None:
    endpoint.body = {
        "ok": True,
        "authed_user": {"access_token": "xoxp-1", "token_type": "user", "expires_in": "43200"},
        "instance_url": "https://acme.my.salesforce.com/",
    }
    oauth = settings(
        endpoint, access_token_path=("authed_user", "access_token"), base_url_field="instance_url"
    )
    tokens = AuthorizationServerClient().refresh(oauth, SECRET, "rt")
    assert tokens.access_token == "xoxp-1"
    assert tokens.base_url == "https://acme.my.salesforce.com"


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (400, {"error": "invalid_grant", "error_description": "rt-1 is revoked"}, "invalid_grant"),
        (200, {"ok": False, "error": "invalid_refresh_token"}, "invalid_grant"),
        (401, {"error": "invalid_client"}, "refused"),
        (400, {"error": "<script>"}, "refused"),
        (503, {}, "unavailable"),
        (429, {}, "unavailable"),
        (200, b"not json", "invalid_response"),
        (200, {"access_token": "", "token_type": "bearer"}, "invalid_response"),
        (200, {"access_token": "a", "token_type": "mac"}, "invalid_response"),
        (200, {"access_token": "a", "expires_in": -5}, "invalid_response"),
        (200, {"access_token": "a", "expires_in": True}, "invalid_response"),
        (200, b'{"access_token": "a", "access_token": "b"}', "invalid_response"),
        (200, {"access_token": "a", "refresh_token": 7}, "invalid_response"),
    ],
)
def test_answers_are_classified_and_the_text_quotes_no_secret(
    endpoint: TokenEndpoint, status: int, body: object, kind: str
) -> None:
    endpoint.status, endpoint.body = status, body
    with pytest.raises(AuthorizationServerError) as failed:
        AuthorizationServerClient().refresh(settings(endpoint), SECRET, "rt-1")
    assert failed.value.kind == kind
    for secret in ("rt-1", SECRET, "<script>", "revoked"):
        assert secret not in failed.value.text


def test_a_base_url_that_is_not_https_is_refused(endpoint: TokenEndpoint) -> None:
    endpoint.body = {"access_token": "a", "instance_url": "http://evil.example"}
    with pytest.raises(AuthorizationServerError) as failed:
        AuthorizationServerClient().refresh(
            settings(endpoint, base_url_field="instance_url"), SECRET, "r"
        )
    assert failed.value.kind == "invalid_response"


def test_retry_after_is_passed_on(endpoint: TokenEndpoint) -> None:
    endpoint.status, endpoint.headers = 503, {"Retry-After": "7"}
    with pytest.raises(AuthorizationServerError) as failed:
        AuthorizationServerClient().refresh(settings(endpoint), SECRET, "rt")
    assert (failed.value.kind, failed.value.retry_after) == ("unavailable", 7)


@pytest.mark.parametrize(
    "retry_after",
    ["\u00b2", "1" * 5000, "Wed, 21 Oct 2026 07:28:00 GMT", "-5", "1.5", "123456"],
    ids=["superscript-two", "5000-digits", "http-date", "negative", "fraction", "six-digits"],
)
def test_a_retry_after_that_is_not_delay_seconds_leaves_the_wait_to_the_broker(
    endpoint: TokenEndpoint, retry_after: str
) -> None:
    endpoint.status, endpoint.headers = 503, {"Retry-After": retry_after}
    with pytest.raises(AuthorizationServerError) as failed:
        AuthorizationServerClient().refresh(settings(endpoint), SECRET, "rt")
    assert (failed.value.kind, failed.value.retry_after) == ("unavailable", 0)


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "a", "expires_in": "\u00b2"},
        {"access_token": "a", "expires_in": "\u0661\u0662"},
        {"access_token": "a", "expires_in": "1" * 5000},
        {"access_token": "a", "expires_in": " 60"},
        {"access_token": "a", "expires_in": "99999999999"},
    ],
    ids=["superscript", "arabic-indic", "5000-digits", "space", "out-of-range"],
)
def test_a_quoted_expires_in_that_is_not_a_bounded_ascii_number_is_an_invalid_response(
    endpoint: TokenEndpoint, body: object
) -> None:
    endpoint.body = body
    with pytest.raises(AuthorizationServerError) as failed:
        AuthorizationServerClient().refresh(settings(endpoint), SECRET, "rt")
    assert failed.value.kind == "invalid_response"
    assert "expires_in" in failed.value.text


def test_a_json_number_of_5000_digits_is_an_invalid_response(endpoint: TokenEndpoint) -> None:
    # json.loads itself raises ValueError past 4,300 digits: loads_strict refuses the document
    endpoint.body = b'{"access_token": "a", "expires_in": ' + b"1" * 5000 + b"}"
    with pytest.raises(AuthorizationServerError) as failed:
        AuthorizationServerClient().refresh(settings(endpoint), SECRET, "rt")
    assert (failed.value.kind, failed.value.text) == (
        "invalid_response",
        "the provider's answer is not a JSON object",
    )


def test_any_error_reading_an_answer_is_an_invalid_response(
    endpoint: TokenEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever reading the answer raises, the caller gets an AuthorizationServerError
    (so the refresh releases its lease and no caller sees a 500)."""
    from jobtoken.broker.upstream import oauth_client

    def broken(*_: object) -> None:
        raise RecursionError("deep")

    monkeypatch.setattr(oauth_client, "_tokens", broken)
    endpoint.body = {"access_token": "a", "expires_in": 60}
    with pytest.raises(AuthorizationServerError) as failed:
        AuthorizationServerClient().refresh(settings(endpoint), SECRET, "rt")
    assert (failed.value.kind, failed.value.text) == (
        "invalid_response",
        "the provider's answer cannot be read (RecursionError)",
    )


def test_a_quoted_expires_in_of_ascii_digits_is_read(endpoint: TokenEndpoint) -> None:
    endpoint.body = {"access_token": "a", "expires_in": "0600"}
    tokens = AuthorizationServerClient().refresh(settings(endpoint), SECRET, "rt")
    assert 595 <= tokens.expires_at - time.time() <= 600


def test_an_unreachable_provider_is_unavailable() -> None:
    oauth = OAuthSettings(client_id="c", token_url="http://127.0.0.1:9/token")
    with pytest.raises(AuthorizationServerError) as failed:
        AuthorizationServerClient(timeout_seconds=2).refresh(oauth, SECRET, "rt")
    assert failed.value.kind == "unavailable"


def test_revocation_posts_rfc7009_fields(endpoint: TokenEndpoint) -> None:
    AuthorizationServerClient().revoke(settings(endpoint), SECRET, "at-1", "access_token")
    path, _, body = endpoint.received[0]
    assert path == "/revoke"
    assert parse_qs(body.decode()) == {
        "token": ["at-1"],
        "token_type_hint": ["access_token"],
        "client_id": ["client id"],
        "client_secret": [SECRET],
    }
