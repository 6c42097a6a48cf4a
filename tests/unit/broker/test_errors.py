"""The one error root: every exception the broker defines derives from BrokerError, and
BrokerError carries its answer as data."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import jobtoken.broker
from jobtoken.broker.errors import BrokerError, BrokerFailure, UpstreamFailure
from jobtoken.broker.store import StoreError


def _broker_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module in pkgutil.walk_packages(jobtoken.broker.__path__, "jobtoken.broker."):
        loaded = importlib.import_module(module.name)
        for _, value in inspect.getmembers(loaded, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("jobtoken.broker."):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def test_every_broker_exception_derives_from_the_one_root() -> None:
    exceptions = _broker_exceptions()
    assert len(exceptions) >= 20  # the walk found the rooms' errors, not an empty package
    strays = sorted(e.__qualname__ for e in exceptions if not issubclass(e, BrokerError))
    assert strays == []


def test_an_error_carries_its_answer_and_its_wait() -> None:
    refused = BrokerError("invalid_scope", "ask for fewer scopes", reason="unknown_scope")
    assert (refused.error, refused.status, refused.reason) == (
        "invalid_scope",
        400,
        "unknown_scope",
    )
    assert str(refused) == refused.description == "ask for fewer scopes"
    assert refused.headers == {}
    waiting = BrokerError("temporarily_unavailable", "later", status=503, retry_after=7)
    assert waiting.reason == "temporarily_unavailable"  # the code, when no reason is given
    assert waiting.headers == {"Retry-After": "7"}


def test_an_unknown_error_code_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="not an OAuth error code"):
        BrokerError("access_denied_forever", "x")


def test_failures_state_their_answer_in_their_class() -> None:
    down = StoreError("the store could not commit")
    assert isinstance(down, BrokerFailure)
    assert (down.error, down.status) == ("temporarily_unavailable", 503)
    slow = UpstreamFailure("too_slow", "took too long", retry_after=3)
    assert (slow.error, slow.status, slow.headers) == (
        "temporarily_unavailable",
        503,
        {"Retry-After": "3"},
    )
    garbled = UpstreamFailure("invalid_response", "not JSON")
    assert (garbled.error, garbled.status, garbled.kind) == (
        "server_error",
        502,
        "invalid_response",
    )
