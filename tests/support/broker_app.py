"""The broker's real ASGI app in this process, over a real config and SQLite store.

For tests that need the whole broker but not a server process: `in_process_broker`
writes a `BrokerProcess` working directory (config, policy, secrets), lets the test
edit the config text, stores the connectors' credentials with the CLI (in this process
too), and serves ``create_app(Broker.from_config(...))`` through
Starlette's TestClient; `exchange` gets a contacts token from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.testclient import TestClient

from jobtoken.broker.assembly import Broker
from jobtoken.broker.config import load_config
from jobtoken.broker.http.app import create_app
from support.broker_process import REPO, REPO_ID, BrokerProcess
from support.contacts_api import ContactsApi
from support.oidc_issuer import FakeOidcIssuer

InProcess = tuple[BrokerProcess, ContactsApi, TestClient]


@contextmanager
def in_process_broker(
    workdir: Path, edit_config: Callable[[BrokerProcess], None] | None = None
) -> Iterator[InProcess]:
    with FakeOidcIssuer() as issuer, ContactsApi() as contacts:
        issuer.claims.update(repository=REPO, repository_id=REPO_ID)
        process = BrokerProcess(workdir, issuer, contacts)
        process.write_files()
        if edit_config is not None:
            edit_config(process)
        process.set_credentials(in_process=True)
        broker = Broker.from_config(load_config(process.config_path))
        try:
            with TestClient(create_app(broker), raise_server_exceptions=False) as client:
                yield process, contacts, client
        finally:
            broker.close()


def exchange(
    process: BrokerProcess,
    client: TestClient,
    scope: str = "contacts.read",
    resource: str = "contacts",
    **claims: object,
) -> str:
    """A token of `resource` for the process's job (its ID token's `claims` changed),
    through ``POST /token``."""
    response = client.post(
        "/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": process.id_token(**claims),
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "resource": resource,
            "scope": scope,
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
