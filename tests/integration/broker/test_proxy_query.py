"""The proxy forwards a query parameter only where the connector's route lists it: a
method override such as ``?_method=DELETE`` never reaches the upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from jobtoken.broker.app import create_app
from jobtoken.broker.assembly import Broker
from jobtoken.broker.config import ConfigError, load_config
from support.broker_process import REPO, REPO_ID, BrokerProcess
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
    with FakeOidcIssuer() as issuer, ContactsApi() as contacts:
        issuer.claims.update(repository=REPO, repository_id=REPO_ID)
        process = BrokerProcess(tmp_path_factory.mktemp("query"), issuer, contacts)
        process.write_files()
        allow_query(process, '["limit"]')
        process.set_credentials()
        broker = Broker.from_config(load_config(process.config_path))
        try:
            with TestClient(create_app(broker), raise_server_exceptions=False) as client:
                response = client.post(
                    "/token",
                    data={
                        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                        "subject_token": process.id_token(),
                        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                        "resource": "contacts",
                        "scope": "contacts.read",
                    },
                )
                assert response.status_code == 200, response.text
                yield process, contacts, client, response.json()["access_token"]
        finally:
            broker.close()


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
