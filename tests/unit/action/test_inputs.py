"""Input validation: one clear error naming the input, before any network call."""

from __future__ import annotations

import pytest

from jobtoken.action.errors import InputError
from jobtoken.action.inputs import (
    InputReader,
    read_exchange_inputs,
    read_revoke_inputs,
)

BASE = {
    "INPUT_BROKER_URL": "https://tokens.example.com/",
    "INPUT_CONNECTOR": "hubspot",
    "INPUT_SCOPES": "crm.read  crm.write",
}


def read(**inputs: str) -> object:
    env = dict(BASE)
    for name, value in inputs.items():
        env["INPUT_" + name.upper()] = value
    return read_exchange_inputs(InputReader(env))


def error_of(**inputs: str) -> InputError:
    with pytest.raises(InputError) as caught:
        read(**inputs)
    return caught.value


def test_defaults() -> None:
    inputs = read_exchange_inputs(InputReader(BASE))
    assert inputs.provider == "broker"
    assert inputs.broker_url == "https://tokens.example.com"
    assert inputs.scopes == ("crm.read", "crm.write")
    assert (inputs.ttl, inputs.max_ttl, inputs.min_remaining, inputs.timeout) == (900, None, 30, 30)
    assert inputs.lifetime_cap == 900
    assert inputs.allowed_scopes is None
    assert inputs.summary is True
    assert inputs.export_env is None
    assert inputs.allow_no_expiry is False


@pytest.mark.parametrize(
    ("inputs", "name", "message"),
    [
        ({"connector": ""}, "connector", "is required"),
        ({"connector": "HubSpot"}, "connector", "lower-case letters"),
        ({"connector": "a/b"}, "connector", "lower-case letters"),
        ({"scopes": "a b a"}, "scopes", "lists the scope a more than once"),
        ({"scopes": " ".join(f"s{i}" for i in range(33))}, "scopes", "at most 32"),
        ({"scopes": 'a"b'}, "scopes", "a character that is not allowed"),
        ({"scopes": "x" * 129}, "scopes", "a character that is not allowed"),
        ({"ttl": "15x"}, "ttl", "is not a duration"),
        ({"ttl": "15"}, "ttl", "must be between 1m and 12h"),  # 15 seconds
        ({"ttl": "30s"}, "ttl", "must be between 1m and 12h"),
        ({"ttl": "13h"}, "ttl", "must be between 1m and 12h"),
        ({"ttl": "2h", "max_ttl": "1h"}, "ttl", "is longer than max-ttl (1h)"),
        ({"min_remaining": "15m"}, "min-remaining", "shorter than the token's lifetime (15m)"),
        ({"timeout": "0s"}, "timeout", "between 1s and 10m"),
        ({"broker_url": ""}, "broker-url", "is required"),
        ({"broker_url": "http://tokens.example.com"}, "broker-url", "must use https://"),
        ({"broker_url": "ftp://x"}, "broker-url", "must be an https:// URL"),
        ({"broker_url": "https://u:p@x.example"}, "broker-url", "user name or password"),
        ({"broker_url": "https://x.example/#f"}, "broker-url", "#fragment"),
        ({"broker_url": "https://x .example"}, "broker-url", "spaces or control"),
        ({"allowed_scopes": "crm.read"}, "scopes", "asks for crm.write, which allowed-scopes"),
        ({"audience": "a b"}, "audience", "without spaces"),
        ({"export_env": "PATH"}, "export-env", "PATH is reserved"),
        ({"export_env": "GITHUB_TOKEN"}, "export-env", "is reserved"),
        ({"export_env": "LD_PRELOAD"}, "export-env", "is reserved"),
        ({"export_env": "1X"}, "export-env", "environment variable name"),
        ({"summary": "yes"}, "summary", "must be true or false"),
        ({"provider": "Vault!"}, "provider", "is not a provider name"),
        ({"connector": "x" * 5000}, "connector", "longer than 4096"),
    ],
)
def test_a_bad_input_is_named_with_what_is_allowed(
    inputs: dict[str, str], name: str, message: str
) -> None:
    error = error_of(**inputs)
    assert error.input_name == name
    assert message in error.message
    assert error.message.startswith(f"input `{name}`: ")


def test_http_is_allowed_for_loopback_only() -> None:
    for url in ("http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"):
        assert read(broker_url=url).broker_url == url  # type: ignore[attr-defined]


def test_guard_rails_are_read() -> None:
    inputs = read(allowed_scopes="crm.read crm.write other", max_ttl="10m", ttl="5m")
    assert inputs.allowed_scopes == frozenset({"crm.read", "crm.write", "other"})  # type: ignore[attr-defined]
    assert inputs.lifetime_cap == 300  # type: ignore[attr-defined]


def test_connector_is_optional_for_other_providers() -> None:
    inputs = read_exchange_inputs(InputReader({"INPUT_PROVIDER": "vault"}))
    assert inputs.connector is None
    assert inputs.broker_url is None


def test_revoke_inputs_accept_nothing_to_revoke() -> None:
    inputs = read_revoke_inputs(InputReader({"INPUT_BROKER_URL": "https://t.example"}))
    assert (inputs.token, inputs.token_id, inputs.revoke_handle) == (None, None, None)
    assert inputs.fail_on_error is False


def test_revoke_token_id_is_validated() -> None:
    with pytest.raises(InputError, match="token-id"):
        read_revoke_inputs(
            InputReader({"INPUT_BROKER_URL": "https://t.example", "INPUT_TOKEN_ID": "a b"})
        )
