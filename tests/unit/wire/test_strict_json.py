"""JSON that parses one way only: repeated keys, NaN and bad UTF-8 are refused."""

from __future__ import annotations

import pytest

from jobtoken.wire.strict_json import DuplicateKeyError, StrictJsonError, loads_strict


def test_plain_json_parses() -> None:
    assert loads_strict(b'{"a": [1, "x", null, true]}') == {"a": [1, "x", None, True]}


def test_a_repeated_key_is_refused_at_any_depth() -> None:
    with pytest.raises(DuplicateKeyError):
        loads_strict(b'{"a": {"b": 1, "b": 2}}')


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a": NaN}', "NaN and Infinity"),
        (b"[Infinity]", "NaN and Infinity"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b"{", "not a JSON document"),
        (b"[" * 100_000 + b"]" * 100_000, "not a JSON document"),
        (b'{"n": ' + b"1" * 5000 + b"}", "not a JSON document"),  # int() refuses > 4,300 digits
    ],
)
def test_ambiguous_or_broken_documents_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(StrictJsonError, match=message) as caught:
        loads_strict(data)
    assert "\xff" not in str(caught.value)
