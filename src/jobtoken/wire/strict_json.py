"""JSON parsing for untrusted documents: JWT segments, OIDC discovery, JWKS.

``loads_strict(data)`` parses UTF-8 JSON and raises ``StrictJsonError`` when a
document is not plain, unambiguous JSON:

- an object repeats a key (Python's ``json`` silently keeps the last one, so two
  parsers could disagree about what a token says);
- a constant ``NaN``, ``Infinity`` or ``-Infinity`` appears;
- the bytes are not valid UTF-8, nesting is too deep for the parser, or a number
  has more digits than ``int`` reads (4,300 by default).

Callers bound the size of ``data`` before calling.

The error text describes the problem; it never quotes the document.
"""

from __future__ import annotations

import json
from typing import NoReturn

__all__ = ["DuplicateKeyError", "StrictJsonError", "loads_strict"]


class StrictJsonError(ValueError):
    """The bytes are not a strict JSON document; the message says why."""


class DuplicateKeyError(StrictJsonError):
    """An object in the document repeats a key."""


def loads_strict(data: bytes) -> object:
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise StrictJsonError("not valid UTF-8") from None
    try:
        return json.loads(
            text, object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant
        )
    except StrictJsonError:
        raise
    except (ValueError, RecursionError):
        raise StrictJsonError("not a JSON document") from None


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError("an object repeats a key")
        result[key] = value
    return result


def _reject_constant(name: str) -> NoReturn:
    raise StrictJsonError("NaN and Infinity are not JSON")
