"""Fixtures of the action's unit tests."""

from __future__ import annotations

import pytest

from jobtoken.action.http import client


@pytest.fixture
def retry_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses ``fetch`` takes between retries, recorded instead of slept: for tests of
    what a retried failure reports, not of the back-off's timing (http/test_client.py)."""
    pauses: list[float] = []
    assert client.fetch.__kwdefaults__ is not None
    monkeypatch.setitem(client.fetch.__kwdefaults__, "sleep", pauses.append)
    return pauses
