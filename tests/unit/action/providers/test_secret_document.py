"""The connector secret contract: JSON document or plain string with metadata."""

from __future__ import annotations

import datetime
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobtoken.action.errors import ProviderError
from jobtoken.action.providers.secret_document import (
    SecretMetadata,
    metadata_from_mapping,
    parse_expiry,
    parse_scopes,
    read_connector_secret,
)

UTC = datetime.timezone.utc
WHEN = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_document_gives_token_scopes_and_expiry() -> None:
    secret = read_connector_secret(
        json.dumps(
            {"token": "pat-abc", "scopes": ["a.read", "b"], "expires_at": "2026-11-21T12:00:00Z"}
        ),
        what="the secret",
    )
    assert (secret.token, secret.scopes, secret.expires_at) == ("pat-abc", ("a.read", "b"), WHEN)


def test_document_scopes_may_be_one_string_and_expiry_epoch_seconds() -> None:
    secret = read_connector_secret(
        json.dumps({"token": "t", "scopes": "a  b", "expires_at": int(WHEN.timestamp())}), what="s"
    )
    assert secret.scopes == ("a", "b")
    assert secret.expires_at == WHEN


def test_document_fields_win_over_metadata_and_missing_ones_come_from_it() -> None:
    metadata = SecretMetadata(where="the tags", scopes="x y", expires_at="2030-01-01T00:00:00Z")
    secret = read_connector_secret('{"token": "t", "scopes": ["a"]}', what="s", metadata=metadata)
    assert secret.scopes == ("a",)
    assert secret.expires_at == datetime.datetime(2030, 1, 1, tzinfo=UTC)


def test_plain_string_takes_scopes_and_expiry_from_metadata() -> None:
    metadata = metadata_from_mapping(
        {"jobtoken-scopes": "crm.read crm.write", "other": "x"},
        where="the tags",
        expires_at=int(WHEN.timestamp()),
    )
    secret = read_connector_secret("  xoxb-123-456\n", what="s", metadata=metadata)
    assert secret.token == "xoxb-123-456"
    assert secret.scopes == ("crm.read", "crm.write")
    assert secret.expires_at == WHEN


def test_tag_expiry_wins_over_the_managers_own() -> None:
    metadata = metadata_from_mapping(
        {"jobtoken-expires-at": "2026-11-21T12:00:00+01:00"}, where="t", expires_at=1
    )
    assert parse_expiry(metadata.expires_at, what="x") == WHEN - datetime.timedelta(hours=1)


def test_plain_string_without_metadata_has_unknown_scopes_and_expiry() -> None:
    secret = read_connector_secret("tok", what="s")
    assert secret.scopes is None
    assert secret.expires_at is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"token": 1}', 'without a string "token"'),
        ('{"scopes": []}', 'without a string "token"'),
        ('{"token": "t", "extra": 1}', "keys jobtoken does not know"),
        ('{"token": "t\\nx"}', "line breaks"),
        ('{"token": "::add-mask::x y"}', "spaces"),
        ('{"token": ""}', "empty token"),
        ("", "empty token"),
        ("tok with space", "spaces"),
        ("tök", "non-ASCII"),
        ('{"token": "t", "scopes": [1]}', "scope token"),
        ('{"token": "t", "scopes": {"a": 1}}', "list of scopes"),
        ('{"token": "t", "expires_at": "tomorrow"}', "RFC 3339"),
        ('{"token": "t", "expires_at": true}', "RFC 3339"),
        ('{"token": "t", "expires_at": 12}', "plausible"),
        ('{"token": "t", "expires_at": "2026-02-30T00:00:00Z"}', "valid RFC 3339"),
    ],
)
def test_bad_secrets_fail_with_a_reason_and_never_echo_the_value(value: str, message: str) -> None:
    with pytest.raises(ProviderError, match=message) as caught:
        read_connector_secret(value, what="the secret")
    if len(value) > 3:
        assert value not in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [
        "\uff12\uff10\uff12\uff16-01-31T12:00:00Z",  # full-width digits: \\d matched them
        "2026-01-31T12:00:00.\u0661Z",
        "\u00b9\u00b2\u00b3",
        "1" * 5000,
    ],
)
def test_an_expiry_of_other_digits_is_refused_as_not_rfc3339_or_seconds(value: str) -> None:
    with pytest.raises(ProviderError, match=r"must be an RFC 3339 time .* or seconds"):
        parse_expiry(value, what="x")


def test_epoch_seconds_may_be_quoted() -> None:
    assert parse_expiry("1800000000", what="x") == datetime.datetime(2027, 1, 15, 8, tzinfo=UTC)


def test_text_not_starting_with_a_brace_is_a_bare_token() -> None:
    assert read_connector_secret("[1]", what="s").token == "[1]"


def test_size_is_bounded() -> None:
    with pytest.raises(ProviderError, match="larger than"):
        read_connector_secret("a" * 70_000, what="s")
    with pytest.raises(ProviderError, match="more than 64 scopes"):
        parse_scopes(" ".join(f"s{i}" for i in range(65)), what="x")


@given(
    st.datetimes(
        min_value=datetime.datetime(2002, 1, 1),
        max_value=datetime.datetime(2200, 1, 1),
        timezones=st.just(UTC),
    )
)
def test_rfc3339_round_trips_with_any_fraction(when: datetime.datetime) -> None:
    text = when.isoformat().replace("+00:00", "Z")
    assert parse_expiry(text, what="x") == when
    assert parse_expiry(int(when.timestamp()), what="x") == when.replace(microsecond=0)


def test_a_document_repeating_a_key_is_refused_not_read_two_ways() -> None:
    text = '{"token": "pat-abc", "scopes": ["admin"], "scopes": ["a.read"]}'
    with pytest.raises(ProviderError, match="the secret is a JSON document that repeats a key"):
        read_connector_secret(text, what="the secret")
