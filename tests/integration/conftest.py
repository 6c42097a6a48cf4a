"""Fixtures for the real-process tests: a real broker process (``jobtoken broker serve``)
on a free loopback port with a fake OIDC issuer, a contacts API as its upstream
connector, and every secret in files of a temp dir."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.broker_process import BrokerProcess, running_broker
from support.contacts_api import ContactsApi
from support.oidc_issuer import FakeOidcIssuer


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A running broker (module-wide), with a stored credential for both connectors."""
    with (
        FakeOidcIssuer() as issuer,
        ContactsApi() as contacts,
        running_broker(tmp_path_factory.mktemp("broker"), issuer, contacts) as process,
    ):
        yield process
