"""The OpenAPI document: served as docs/openapi.json holds it, naming exactly the app's
routes and methods, valid OpenAPI 3.1, and describing what the broker really answers."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.routing import Route
from starlette.testclient import TestClient

from jobtoken.broker.http.openapi.document import DOCUMENT, OPENAPI_JSON
from support.broker_app import InProcess, exchange, in_process_broker

DOCS_COPY = Path(__file__).resolve().parents[5] / "docs" / "openapi.json"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
REGENERATE = "run: .venv/bin/python -m jobtoken.broker.http.openapi.document docs/openapi.json"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    with in_process_broker(tmp_path_factory.mktemp("openapi")) as running:
        yield running


def _client(broker: InProcess) -> TestClient:
    return broker[2]


def test_docs_copy_is_what_the_broker_serves(broker: InProcess) -> None:
    served = _client(broker).get("/openapi.json")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json"
    assert served.content == OPENAPI_JSON
    assert DOCS_COPY.read_bytes() == served.content, f"docs/openapi.json is stale; {REGENERATE}"


def test_every_route_is_documented_with_its_methods_and_nothing_else(broker: InProcess) -> None:
    routes = _client(broker).app.routes  # type: ignore[attr-defined]
    served: dict[str, set[str]] = {}
    for route in routes:
        assert isinstance(route, Route), route
        assert route.methods is not None
        served[route.path_format] = set(route.methods)
    documented: dict[str, set[str]] = {}
    for path, item in DOCUMENT["paths"].items():
        methods = {m.upper() for m in item if m in HTTP_METHODS}
        documented[path] = methods | ({"HEAD"} if "GET" in methods else set())  # Starlette
    assert documented == served
    assert "/openapi.json" in documented
    assert len(documented) == 11


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)
    broken = copy.deepcopy(DOCUMENT)
    broken["paths"]["/token"]["post"]["responses"]["200"] = {"content": {}}  # no description
    with pytest.raises(Exception, match="description"):
        validate(broken)


def test_form_fields_are_those_the_broker_reads() -> None:
    schema = DOCUMENT["components"]["schemas"]["TokenExchangeRequest"]
    assert set(schema["properties"]) == {
        "grant_type", "subject_token", "subject_token_type", "resource", "audience",
        "scope", "requested_token_type", "ttl", "actor_token",
    }  # fmt: skip
    assert schema["required"] == ["grant_type", "subject_token", "subject_token_type", "scope"]


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        section = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            section = section[part.replace("~1", "/").replace("~0", "~")]
        node = section
    return node


def _check(path: str, method: str, answer: Any) -> None:
    """``answer`` (a response) is one the document describes for this operation."""
    responses = DOCUMENT["paths"][path][method]["responses"]
    described = _resolve(responses.get(str(answer.status_code)) or responses["default"])
    for name, header in described.get("headers", {}).items():
        if _resolve(header).get("required") or name == "X-Request-Id":
            assert name.lower() in answer.headers, (name, answer.status_code)
        const = _resolve(header).get("schema", {}).get("const")
        if const is not None and name.lower() in answer.headers:
            assert answer.headers[name.lower()] == const
    content = described.get("content")
    if content is None:
        assert answer.content == b""
        return
    media = answer.headers["content-type"].split(";")[0]
    (declared,) = [m for m in content if m.split(";")[0] == media or m == "*/*"]
    if media == "application/json":
        schema = {**content[declared]["schema"], "components": DOCUMENT["components"]}
        Draft202012Validator(schema).validate(answer.json())


def test_real_answers_match_the_document(broker: InProcess) -> None:
    process, _, client = broker
    token = exchange(process, client)
    _check("/openapi.json", "get", client.get("/openapi.json"))
    wrong_grant = client.post("/token", data={"grant_type": "x"})
    assert wrong_grant.json()["error"] == "unsupported_grant_type"
    _check("/token", "post", wrong_grant)
    not_a_form = client.post("/token", content=b"a=1", headers={"content-type": "text/plain"})
    _check("/token", "post", not_a_form)
    unknown = client.post("/revoke", data={"token": "nope"})
    assert unknown.status_code == 200
    _check("/revoke", "post", unknown)
    _check("/revoke", "post", client.post("/revoke", data={}))
    secret = ("resource-server", process.client_secret)
    active = client.post("/introspect", data={"token": token}, auth=secret)
    assert active.json()["active"] is True
    _check("/introspect", "post", active)
    _check("/introspect", "post", client.post("/introspect", data={"token": "x"}, auth=secret))
    unauthenticated = client.post("/introspect", data={"token": token})
    assert unauthenticated.status_code == 401
    _check("/introspect", "post", unauthenticated)
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/jwks.json"):
        _check(path, "get", client.get(path))
    for path in ("/healthz", "/livez", "/metrics"):
        _check(path, "get", client.get(path))
    unsigned = client.post("/webhooks/github", content=b"{}")
    assert unsigned.status_code == 401
    _check("/webhooks/github", "post", unsigned)
    path = "/proxy/{connector}/{path}"
    _check(path, "get", client.get("/proxy/nope/x"))
    _check(path, "get", client.get("/proxy/contacts/v1/contacts"))
    bearer = {"authorization": f"Bearer {token}"}
    _check(path, "get", client.get("/proxy/contacts/v1/contacts/../x", headers=bearer))
    _check(path, "post", client.post("/proxy/contacts/v1/contacts/1", headers=bearer))
    forwarded = client.get("/proxy/contacts/v1/contacts/1", headers=bearer)
    assert forwarded.status_code == 200
    _check(path, "get", forwarded)


def test_the_document_is_plain_json_without_deployment_values() -> None:
    text = OPENAPI_JSON.decode()
    assert json.loads(text) == DOCUMENT
    assert "servers" not in DOCUMENT
    assert "example.com" not in text
    assert "127.0.0.1" not in text


def test_a_shared_credentials_answers_match_the_document(broker: InProcess) -> None:
    process, _, client = broker
    secret = ("resource-server", process.client_secret)
    for job in ("9101", "9102"):  # two jobs lease the passthrough connector's one key
        exchange(process, client, "ftp.read", resource="vault", run_id=job)
        one = client.post(
            "/introspect", data={"token": process.passthrough_credential}, auth=secret
        )
        _check("/introspect", "post", one)
    assert one.json()["active_leases"] == 2
    alone = client.post("/revoke", data={"token": process.passthrough_credential})
    assert alone.json()["error"] == "unsupported_token_type"
    _check("/revoke", "post", alone)
    proven = client.post(
        "/revoke",
        data={
            "token": process.passthrough_credential,
            "subject_token": process.id_token(run_id="9101"),
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        },
    )
    assert proven.status_code == 200
    _check("/revoke", "post", proven)
