"""Proof that no secret reached a job log: the value itself and every encoding of it."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from urllib.parse import quote


def encodings(secret: str) -> dict[str, str]:
    """The secret and the forms a leak could take: base64 (both alphabets), hex, URL-encoded."""
    raw = secret.encode()
    forms = {
        "plain": secret,
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "hex": raw.hex(),
        "url-encoded": quote(secret, safe=""),
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
