"""The names both halves agree on: connectors, scopes, token ids and durations.

Each rule is a compiled pattern plus a check that returns ``None`` when the value
is well formed, or a sentence saying what a well-formed value looks like. The
action, the policy schema and the broker config all call these checks, so a name
one of them accepts is accepted by all three (a test holds them to it).

- **connector name**: 1 to 63 characters, lower-case letters, digits, ``_`` and
  ``-``, starting with a letter or digit. No dot: a connector name is a TOML table
  key in the broker config (``[connectors.NAME]``, where a dot would nest tables)
  and a path segment of ``/proxy/NAME/…``.
- **scope**: an RFC 6749 §3.3 scope-token — 1 to 128 printable ASCII characters
  except space, ``"`` and ``\\``; at most 32 scopes in one request.
- **token id**: 1 to 128 of ``A-Z a-z 0-9 . _ : -`` (the broker's ``token_id``,
  a JWT ``jti``, or ``sha256:`` and 32 hex digits).
- **duration**: ASCII digits of seconds (``900``), or hours, minutes and seconds
  in that order, each part optional (``90s``, ``15m``, ``1h``, ``1h30m``).
- **numeric id**: a GitHub id as an ID token carries it (``repository_id``,
  ``actor_id``, …: a JSON string), and as a policy names it: 1 to 20 ASCII digits
  without a leading zero, compared as text (one spelling per id).
- **ASCII integer**: ``parse_ascii_int(text, max_digits)`` is how every part of
  jobtoken reads a number from outside (a header, a JSON string, a form field, a
  YAML scalar, a command-line argument): 1 to ``max_digits`` of ``0-9``, else
  ``None``. Not ``str.isdigit`` (true for ``²``, which ``int`` then refuses with
  ``ValueError``) and not bare ``int`` (which also reads signs, spaces, ``_`` and
  other scripts' digits, and raises ``ValueError`` past 4,300 digits).

:func:`json_schema_pattern` writes a rule for a JSON Schema ``pattern`` (the broker's
OpenAPI document), so a document states the rule the code checks, not a copy of it.
"""

from __future__ import annotations

import re

__all__ = [
    "CONNECTOR_NAME",
    "CONTENT_LENGTH_DIGITS",
    "MAX_SCOPES",
    "MAX_SCOPE_LENGTH",
    "NUMERIC_ID",
    "SCOPE",
    "TOKEN_ID",
    "check_connector_name",
    "check_scope",
    "format_duration",
    "json_schema_pattern",
    "parse_ascii_int",
    "parse_duration",
    "split_scopes",
]

MAX_CONNECTOR_NAME_LENGTH = 63
MAX_SCOPE_LENGTH = 128
MAX_SCOPES = 32
#: the longest duration anything accepts: a week, far beyond every lifetime cap
MAX_DURATION_SECONDS = 7 * 24 * 3600
#: the most digits `parse_ascii_int` reads: 640 is the lowest limit on ``int(str)``
#: that ``sys.set_int_max_str_digits`` (or ``PYTHONINTMAXSTRDIGITS``) can set
MAX_INT_DIGITS = 640
#: digits read of an HTTP Content-Length (more than any body anything accepts)
CONTENT_LENGTH_DIGITS = 20

# `\Z`, never `$`: `$` also matches before a trailing newline.
CONNECTOR_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}\Z")
SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}\Z")
TOKEN_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")
NUMERIC_ID = re.compile(r"[1-9][0-9]{0,19}\Z")
_ASCII_DIGITS = re.compile(r"[0-9]+\Z")
#: hours, minutes, seconds: each part's digits are read (and bounded) by `parse_ascii_int`
_DURATION = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?\Z")
_DURATION_PART_DIGITS = 6
_SECONDS_DIGITS = 9
#: what separates scopes in a list: ASCII space, tab and line breaks, nothing else
#: (`str.split()` would also split at \x1c-\x1f and Unicode spaces, letting through a
#: scope that every check after it would see as two)
_SCOPE_SEPARATORS = re.compile(r"[ \t\r\n]+")

CONNECTOR_NAME_RULE = (
    f"1 to {MAX_CONNECTOR_NAME_LENGTH} lower-case letters, digits, _ and -, "
    "starting with a letter or digit"
)
SCOPE_RULE = f'1 to {MAX_SCOPE_LENGTH} printable ASCII characters except space, " and \\ (RFC 6749)'


def check_connector_name(name: str) -> str | None:
    """None when `name` is a connector name, else what one looks like."""
    return None if CONNECTOR_NAME.match(name) else f"a connector name is {CONNECTOR_NAME_RULE}"


def check_scope(scope: str) -> str | None:
    """None when `scope` is one RFC 6749 scope-token, else what one looks like."""
    return None if SCOPE.match(scope) else f"a scope is {SCOPE_RULE}"


def json_schema_pattern(rule: re.Pattern[str], repeat: int = 1) -> str:
    """`rule` as an ECMA-262 regex for a JSON Schema ``pattern``; with `repeat` > 1, a
    list of 1 to `repeat` values separated by single spaces (a scope list).

    Our rules are used with ``match`` (anchored at the start) and end in ``\\Z``, because
    Python's ``$`` also matches before a final newline. ECMA-262 has no ``\\Z`` (without
    the ``u`` flag it reads it as a literal ``Z``), while its ``$`` without the ``m``
    flag matches only at the very end; a JSON Schema ``pattern`` is a search, not a
    match. So the rule's body goes between ``^`` and ``$``. A body with ``|``, ``\\A``,
    ``\\Z`` or a named group would change meaning there: ValueError.
    """
    body = rule.pattern.removesuffix("\\Z")
    if body == rule.pattern or any(part in body for part in ("|", "\\A", "\\Z", "(?P")):
        raise ValueError(f"not a rule json_schema_pattern can write: {rule.pattern!r}")
    if repeat == 1:
        return f"^{body}$"
    return f"^{body}( {body}){{0,{repeat - 1}}}$"


def split_scopes(text: str) -> tuple[str, ...]:
    """The scopes of a space-separated list (YAML line breaks allowed); each still to check."""
    return tuple(part for part in _SCOPE_SEPARATORS.split(text) if part)


def parse_ascii_int(text: str, max_digits: int) -> int | None:
    """The value of `text` when it is 1 to `max_digits` ASCII digits ``0-9``, else None.

    Nothing else: no sign, space, ``_``, line break or other script's digit; leading
    zeros are read as decimal (``010`` is 10). `max_digits` is the caller's bound, at
    most ``MAX_INT_DIGITS`` (a larger one is a programming error: ``ValueError``).
    """
    if not 0 < max_digits <= MAX_INT_DIGITS:
        raise ValueError(f"max_digits must be 1 to {MAX_INT_DIGITS}, not {max_digits}")
    if not 0 < len(text) <= max_digits or not _ASCII_DIGITS.match(text):
        return None
    return int(text)


def parse_duration(text: str) -> int | None:
    """Seconds in ``900``, ``90s``, ``15m``, ``1h`` or ``1h30m``; None when not a duration.

    Digits are ASCII only, at most 9 for bare seconds and 6 for each part.
    """
    seconds = parse_ascii_int(text, _SECONDS_DIGITS)
    if seconds is None:
        match = _DURATION.match(text)
        if not text or match is None:
            return None
        hours, minutes, secs = (
            parse_ascii_int(part or "0", _DURATION_PART_DIGITS) for part in match.groups()
        )
        if hours is None or minutes is None or secs is None:
            return None
        seconds = hours * 3600 + minutes * 60 + secs
    return seconds if seconds <= MAX_DURATION_SECONDS else None


def format_duration(seconds: int) -> str:
    """The shortest of ``2h``, ``15m`` or ``90s`` that states `seconds` exactly."""
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"
