# ruff: noqa: E501 -- the attack tables keep one case per line (`# fmt: skip`)
"""Attacks on ``/proxy/<connector>/<path>`` against the real broker process, over raw
sockets (an HTTP client library would normalise ``..`` or refuse a bad header first):
each gets its exact status and error, and the upstream contacts API receives nothing."""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass

import pytest
import requests

from support.broker_process import BrokerProcess

PREFIX = "/proxy/contacts"


@dataclass(frozen=True)
class Tokens:
    contacts: str
    vault: str
    revoked: str
    expired: str


@pytest.fixture(scope="module")
def tokens(broker: BrokerProcess) -> Tokens:
    def issue(**form: str) -> str:
        response = broker.exchange(**form)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    expired = issue(ttl="1")
    revoked = issue()
    requests.post(f"{broker.url}/revoke", data={"token": revoked}, timeout=10)
    vault = issue(resource="vault", scope="ftp.read")
    contacts = issue()
    time.sleep(2.1)  # the 1 s token is past its exp (the proxy allows no leeway)
    return Tokens(contacts, vault, revoked, expired)


def _send(broker: BrokerProcess, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, object] | None]:  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", broker.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    return response.status, (json.loads(raw) if raw and raw.startswith(b"{") else None)


def _raw(broker: BrokerProcess, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


TOKENLESS = [
    # (Authorization header, or None for none)
    pytest.param(None, id="no-token"),
    pytest.param("Bearer", id="bearer-without-token"),
    pytest.param("Basic cmVzb3VyY2Utc2VydmVyOng=", id="basic-scheme"),
    pytest.param("Bearer not.a.jwt", id="garbage-token"),
    pytest.param("Bearer {vault}", id="token-of-another-connector"),
    pytest.param("Bearer {revoked}", id="revoked-token"),
    pytest.param("Bearer {expired}", id="expired-token"),
    pytest.param("Bearer {contacts}x", id="token-signature-altered"),
    pytest.param("Bearer {contacts_header}.e30.{contacts_signature}", id="token-claims-emptied"),
]


@pytest.mark.parametrize("authorization", TOKENLESS)
def test_without_a_valid_token_nothing_is_forwarded(
    broker: BrokerProcess, tokens: Tokens, authorization: str | None
) -> None:
    parts = tokens.contacts.split(".")
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization.format(
            contacts=tokens.contacts, vault=tokens.vault, revoked=tokens.revoked,
            expired=tokens.expired, contacts_header=parts[0], contacts_signature=parts[2],
        )  # fmt: skip
    forwarded = len(broker.contacts.requests)
    status, body = _send(broker, "GET", f"{PREFIX}/v1/contacts", headers)
    assert (status, body and body["error"]) == (401, "invalid_token")
    assert len(broker.contacts.requests) == forwarded


PATHS = [
    # (raw path after /proxy, status, error)
    pytest.param("/contacts/v1/../admin", 400, "invalid_request", id="dot-dot"),
    pytest.param("/contacts/v1/contacts/..", 400, "invalid_request", id="trailing-dot-dot"),
    pytest.param("/contacts/v1/./contacts", 400, "invalid_request", id="dot"),
    pytest.param("/contacts/v1/%2e%2e/admin", 400, "invalid_request", id="encoded-dot-dot"),
    pytest.param("/contacts/v1/%2E%2e/admin", 400, "invalid_request", id="encoded-dot-dot-mixed-case"),
    pytest.param("/contacts/v1/contacts%2f..%2fadmin", 400, "invalid_request", id="encoded-slash"),
    pytest.param("/contacts/v1/contacts/..%5cadmin", 400, "invalid_request", id="encoded-backslash"),
    pytest.param("/contacts/v1/contacts;/../admin", 400, "invalid_request", id="semicolon-path-parameter"),
    pytest.param("/contacts/v1/contacts/..;/admin", 400, "invalid_request", id="tomcat-dot-dot-semicolon"),
    pytest.param("/contacts/v1//contacts", 400, "invalid_request", id="empty-segment"),
    pytest.param("/contacts/v1/contacts/%00", 400, "invalid_request", id="encoded-nul"),
    pytest.param("/contacts/v1/contacts/%0d%0aX-Injected:%201", 404, None, id="encoded-crlf"),  # no route matches a decoded newline
    pytest.param("/contacts/v1/%252e%252e/admin", 403, "insufficient_scope", id="double-encoded-dot-dot"),
    pytest.param("/contacts/admin", 403, "insufficient_scope", id="route-not-listed"),
    pytest.param("/contacts/v2/contacts", 403, "insufficient_scope", id="route-other-version"),
    pytest.param("/contacts/v1/contactsX", 403, "insufficient_scope", id="route-prefix-only"),
    pytest.param("/contacts/V1/contacts", 403, "insufficient_scope", id="route-case"),
    pytest.param("/contacts/v1/contacts?limit=1", 400, "invalid_request", id="query-not-listed"),
    pytest.param("/contacts/v1/contacts?_method=DELETE", 400, "invalid_request", id="query-method-override"),
    pytest.param("/contacts/v1/contacts?%00=1", 400, "invalid_request", id="query-nul-name"),
    pytest.param("/vault/anything", 404, "not_found", id="connector-not-proxied"),
    pytest.param("/crm/v1/contacts", 404, "not_found", id="connector-unknown"),
    pytest.param("/CONTACTS/v1/contacts", 404, "not_found", id="connector-upper-case"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "status", "error"), PATHS)
def test_a_hostile_path_is_refused_and_nothing_is_forwarded(
    broker: BrokerProcess, tokens: Tokens, path: str, status: int, error: str | None
) -> None:
    forwarded = len(broker.contacts.requests)
    answer = _send(broker, "GET", f"/proxy{path}", {"Authorization": f"Bearer {tokens.contacts}"})
    assert (answer[0], answer[1] and answer[1]["error"]) == (status, error)
    assert len(broker.contacts.requests) == forwarded


@pytest.mark.parametrize(
    ("method", "status"),
    [
        pytest.param("POST", 403, id="post"),
        pytest.param("PUT", 403, id="put"),
        pytest.param("PATCH", 403, id="patch"),
        pytest.param("DELETE", 403, id="delete"),
        pytest.param("OPTIONS", 405, id="options"),
        pytest.param("TRACE", 405, id="trace"),
        pytest.param("PROPFIND", 405, id="webdav"),
    ],
)
def test_a_method_no_route_allows_is_refused(
    broker: BrokerProcess, tokens: Tokens, method: str, status: int
) -> None:
    forwarded = len(broker.contacts.requests)
    answer = _send(broker, method, f"{PREFIX}/v1/contacts", {"Authorization": f"Bearer {tokens.contacts}"})  # fmt: skip
    assert answer[0] == status
    assert status == 405 or (answer[1] is not None and answer[1]["error"] == "insufficient_scope")
    assert len(broker.contacts.requests) == forwarded


SMUGGLING = [
    pytest.param(b"X-A: 1\r\n continued\r\n", id="obs-fold"),
    pytest.param(b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", id="cl-and-te"),
    pytest.param(b"Content-Length: 4\r\nContent-Length: 5\r\n", id="two-content-lengths"),
    pytest.param(b"X-A: a\x00b\r\n", id="nul-in-header"),
    pytest.param(b"X-A: a\rGET /admin HTTP/1.1\r\n", id="bare-cr"),
    pytest.param(b"X A: 1\r\n", id="space-in-name"),
    pytest.param(b"Transfer-Encoding: chunked, identity\r\n", id="te-list"),
]


@pytest.mark.parametrize("headers", SMUGGLING)
def test_a_smuggled_header_is_400_and_nothing_is_forwarded(
    broker: BrokerProcess, tokens: Tokens, headers: bytes
) -> None:
    forwarded = len(broker.contacts.requests)
    request = (
        f"GET {PREFIX}/v1/contacts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {tokens.contacts}\r\n".encode()
        + headers
        + b"Connection: close\r\n\r\n"
    )
    assert _raw(broker, request) == 400
    assert len(broker.contacts.requests) == forwarded


def test_the_proxy_forwards_a_valid_call(broker: BrokerProcess, tokens: Tokens) -> None:
    """The control: the refusals above are not a proxy that forwards nothing."""
    forwarded = len(broker.contacts.requests)
    status, body = _send(broker, "GET", f"{PREFIX}/v1/contacts", {"Authorization": f"Bearer {tokens.contacts}"})  # fmt: skip
    assert status == 200
    assert body is not None
    assert "contacts" in body
    assert len(broker.contacts.requests) == forwarded + 1
