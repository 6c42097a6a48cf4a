from __future__ import annotations

import base64

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


CLIENT = TestClient(Starlette(routes=[Route("/", _echo, methods=["POST"])]))


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
