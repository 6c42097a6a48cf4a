from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import MutableMapping
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from jobtoken.broker.errors import BrokerError
from jobtoken.broker.http.oauth import basic_credentials, error_response, read_form, safe_text


async def _echo(request: Request) -> Response:
    try:
        form = await read_form(request, limit=200)
    except BrokerError as exc:
        return error_response(exc)
    return JSONResponse({"form": form, "basic": basic_credentials(request)})


APP = Starlette(routes=[Route("/", _echo, methods=["POST"])])
CLIENT = TestClient(APP)


def test_a_form_is_parsed_into_single_values() -> None:
    body = CLIENT.post("/", data={"a": "1", "b": "x y"}).json()
    assert body["form"] == {"a": "1", "b": "x y"}


def test_a_repeated_parameter_is_invalid_request() -> None:
    response = CLIENT.post(
        "/", content="a=1&a=2", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "parameter a sent twice",
    }
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        ("a=1", "application/json", 400),
        ("a=1&&b", "application/x-www-form-urlencoded", 400),
        ("&".join(f"f{i}=1" for i in range(17)), "application/x-www-form-urlencoded", 400),
        ("a=" + "x" * 300, "application/x-www-form-urlencoded", 413),
    ],
)
def test_malformed_wrong_type_too_many_fields_or_oversized_bodies_are_refused(
    content: str, content_type: str, status: int
) -> None:
    response = CLIENT.post("/", content=content, headers={"content-type": content_type})
    assert response.status_code == status
    assert response.json()["error"] == "invalid_request"


def _post_raw(content_length: bytes) -> tuple[int, dict[str, Any]]:
    """A POST with exactly these header bytes, straight into the ASGI app (an HTTP client
    would re-encode them, and uvicorn's parsers refuse a non-digit Content-Length with
    their own 400 before the app: other ASGI servers need not)."""
    sent: list[MutableMapping[str, Any]] = []
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", content_length),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"a=1", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(APP(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], json.loads(body)


@pytest.mark.parametrize(
    "content_length",
    [b"\xb2", b"1" * 5000, b"+3", b"3 ", b""],
    ids=["superscript-two", "5000-digits", "sign", "space", "empty"],
)
def test_a_content_length_that_is_not_ascii_digits_is_invalid_request(
    content_length: bytes,
) -> None:
    status, body = _post_raw(content_length)
    assert (status, body["error"], body["error_description"]) == (
        400,
        "invalid_request",
        "invalid Content-Length",
    )


def test_a_5000_digit_content_length_through_an_http_client_is_invalid_request() -> None:
    response = CLIENT.post(
        "/",
        content="a=1",
        headers={"content-type": "application/x-www-form-urlencoded", "content-length": "1" * 5000},
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_basic_credentials_are_form_decoded() -> None:
    value = base64.b64encode(b"my%20client:p%3Ass").decode()
    body = CLIENT.post("/", data={"a": "1"}, headers={"Authorization": f"Basic {value}"}).json()
    assert body["basic"] == ["my client", "p:ss"]


@pytest.mark.parametrize(
    "header", ["Bearer x", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()]
)
def test_other_authorization_headers_give_no_credentials(header: str) -> None:
    body = CLIENT.post("/", data={"a": "1"}, headers={"Authorization": header}).json()
    assert body["basic"] is None


def test_safe_text_neutralises_workflow_commands_and_control_characters() -> None:
    text = safe_text('::add-mask::x\n"quoted"\\ é')
    assert "::" not in text
    for unsafe in ("\n", '"', "\\", "é"):
        assert unsafe not in text
