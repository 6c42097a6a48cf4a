"""The demo's contacts API answers only with its API key."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from support.contacts_api import CONTACTS, ContactsApi


def call(api: ContactsApi, path: str, authorization: str | None) -> tuple[int, object]:
    headers = {"Authorization": authorization} if authorization else {}
    request = urllib.request.Request(api.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_lists_and_gets_contacts_with_the_api_key() -> None:
    with ContactsApi() as api:
        status, body = call(api, "/v1/contacts", f"Bearer {api.api_key}")
        assert status == 200
        assert body == {"contacts": list(CONTACTS)}
        assert call(api, "/v1/contacts/2", f"Bearer {api.api_key}") == (200, CONTACTS[1])
        assert call(api, "/v1/contacts/9", f"Bearer {api.api_key}")[0] == 404
        assert api.requests[0] == ("GET", "/v1/contacts", True)


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic eDp5"])
def test_refuses_without_the_api_key(authorization: str | None) -> None:
    with ContactsApi() as api:
        status, body = call(api, "/v1/contacts", authorization)
        assert status == 401
        assert "contacts" not in json.dumps(body)
        assert api.requests == [("GET", "/v1/contacts", False)]
