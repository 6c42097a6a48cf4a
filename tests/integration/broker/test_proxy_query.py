"""The proxy forwards a query parameter only where the connector's route lists it: a
method override such as ``?_method=DELETE`` never reaches the upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from jobtoken.broker.config import ConfigError, load_config
from support.broker_app import exchange, in_process_broker
from support.broker_process import BrokerProcess
from support.contacts_api import ContactsApi
from support.oidc_issuer import FakeOidcIssuer

Setup = tuple[BrokerProcess, ContactsApi, TestClient, str]


def allow_query(process: BrokerProcess, names: str) -> None:
    text = process.config_path.read_text()
    text = text.replace(
        'scope = "contacts.read"\n', f'scope = "contacts.read"\nquery = {names}\n', 1
    )
    process.config_path.write_text(text)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    edit = lambda process: allow_query(process, '["limit"]')  # noqa: E731
    with in_process_broker(tmp_path_factory.mktemp("query"), edit) as (process, contacts, client):
        yield process, contacts, client, exchange(process, client)


def proxied(setup: Setup, query: str) -> int:
    _, _, client, token = setup
    response = client.get(
        f"/proxy/contacts/v1/contacts{query}", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code


def test_a_listed_parameter_is_forwarded_as_sent(setup: Setup) -> None:
    contacts = setup[1]
    assert proxied(setup, "?limit=2") == 200
    assert contacts.queries[-1] == "limit=2"
    assert proxied(setup, "") == 200
    assert contacts.queries[-1] == ""


@pytest.mark.parametrize(
    "query",
    ["?_method=DELETE", "?limit=2&_method=DELETE", "?%5Fmethod=DELETE", "?other=1", "?=x", "?&"],
)
def test_an_unlisted_parameter_refuses_the_call_and_nothing_is_forwarded(
    setup: Setup, query: str
) -> None:
    contacts = setup[1]
    before = len(contacts.queries)
    assert proxied(setup, query) == 400
    assert len(contacts.queries) == before


def test_a_route_may_not_list_a_method_override(tmp_path_factory: pytest.TempPathFactory) -> None:
    with FakeOidcIssuer() as issuer, ContactsApi() as contacts:
        process = BrokerProcess(tmp_path_factory.mktemp("query-bad"), issuer, contacts)
        process.write_files()
        allow_query(process, '["_method"]')
        with pytest.raises(ConfigError, match="may not be forwarded"):
            load_config(process.config_path)
