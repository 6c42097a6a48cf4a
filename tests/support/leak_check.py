"""Proof that no secret reached a log, a store or a file: the value itself and every
encoding of it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from urllib.parse import quote


def _base64_cores(raw: bytes) -> dict[str, str]:
    """The part of the base64 text of ``raw`` that is the same wherever ``raw`` starts in
    a longer text: for each of the three offsets, only the characters made of ``raw``'s
    bytes alone (base64 turns every 3 bytes into 4 characters)."""
    cores: dict[str, str] = {}
    for offset in range(3):
        skip = (3 - offset) % 3  # bytes of raw that share a group with what came before
        body = raw[skip:]
        body = body[: len(body) - len(body) % 3]
        if len(body) >= 6:
            cores[f"base64 at offset {offset}"] = base64.b64encode(body).decode()
            cores[f"base64url at offset {offset}"] = base64.urlsafe_b64encode(body).decode()
    return cores


def encodings(secret: str) -> dict[str, str]:
    """The secret and the forms a leak could take: base64 (both alphabets, at each of
    the three offsets in a longer encoded text), hex, URL-encoded and JSON-escaped."""
    raw = secret.encode()
    forms = {
        "plain": secret,
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "hex": raw.hex(),
        "url-encoded": quote(secret, safe=""),
        "json-escaped": json.dumps(secret)[1:-1],
        **_base64_cores(raw),
    }
    # each line of a multi-line value (a line is what the runner masks)
    for number, line in enumerate(secret.splitlines()):
        if len(line) >= 8 and line != secret:
            forms[f"line {number}"] = line
    return forms


def assert_no_leak(log: str, secrets: Iterable[str]) -> None:
    checked = 0
    for secret in secrets:
        for name, form in encodings(secret).items():
            assert form not in log, f"the {name} form of a secret appears in the log"
            checked += 1
    assert checked, "no secret was checked: the test did not capture any"


def assert_nothing_leaked(places: dict[str, bytes], secrets: Iterable[str]) -> int:
    """No form of any secret in any of ``places`` (name -> content, e.g. a log file, the
    database file, its WAL); how many (place, secret, form) triples were checked."""
    checked = 0
    for secret in secrets:
        if not secret:
            continue
        for name, form in encodings(secret).items():
            needle = form.encode()
            for place, content in places.items():
                assert needle not in content, f"the {name} form of a secret is in {place}"
                checked += 1
    assert checked, "no secret was checked: the test did not capture any"
    return checked
