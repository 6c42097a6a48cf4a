"""One HTTP request from the broker to another server, bounded in size and in time.

The broker's own synchronous calls go to servers it does not control: an issuer's
discovery document and JWKS, the GitHub contents API (policies), an OAuth provider's
token and revocation endpoints, and the GitHub App API (installation tokens).
:func:`request_bounded` is the one loop that makes them, through the caller's
``requests.Session`` (its keep-alive pool; the caller sets ``trust_env = False``). The
proxy's connector calls are the other outbound stack, async ``httpx`` with the same
bounds (``upstream/proxy_client.py``). No redirect is followed, a declared ``Content-Length`` over
the cap is refused before reading, the body is read one socket read at a time and cut
at ``max_bytes``, and the exchange is cut once it has run ``total_seconds``: connecting
waits at most ``connect_timeout``, each read at most ``read_timeout``, and the deadline
is checked after every read, so a server that drips a byte at a time is cut at the
deadline, not after 8 KiB. An answer read to its end leaves its connection in the
session's pool. Every failure is a :class:`BoundedHttpError` whose ``kind`` says which
bound was hit and whose text names no URL, header or body (they may hold secrets):
callers phrase their own message around it.

Public API: :func:`request_bounded`, :class:`BoundedResponse`, :class:`BoundedHttpError`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import requests
import urllib3

from jobtoken.broker.errors import UpstreamFailure
from jobtoken.wire.grammar import CONTENT_LENGTH_DIGITS, parse_ascii_int

__all__ = ["BoundedHttpError", "BoundedResponse", "request_bounded"]

_CHUNK = 8192
Failure = Literal["too_large", "too_slow", "unreachable"]


class BoundedHttpError(UpstreamFailure):
    """The request failed or broke a bound; ``kind`` says which, ``detail`` how."""

    kind: Failure

    def __init__(self, kind: Failure, detail: str) -> None:
        super().__init__(kind, detail)
        self.detail = detail


@dataclass(frozen=True, repr=False)
class BoundedResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


def request_bounded(
    session: requests.Session,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    max_bytes: int,
    connect_timeout: float,
    read_timeout: float,
    total_seconds: float,
    body: bytes | None = None,
) -> BoundedResponse:
    deadline = time.monotonic() + total_seconds
    try:
        with session.request(
            method,
            url,
            headers=dict(headers),
            data=body or None,
            timeout=(connect_timeout, read_timeout),
            allow_redirects=False,
            stream=True,
        ) as response:
            declared = parse_ascii_int(
                response.headers.get("Content-Length", "0"), CONTENT_LENGTH_DIGITS
            )
            if declared is None or declared > max_bytes:
                raise BoundedHttpError("too_large", f"sent more than {max_bytes} bytes")
            received = _read_body(response.raw, max_bytes, deadline)
            return BoundedResponse(response.status_code, dict(response.headers), received)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise BoundedHttpError(
            "unreachable", f"could not be reached ({type(exc).__name__})"
        ) from None


def _read_body(raw: urllib3.BaseHTTPResponse, max_bytes: int, deadline: float) -> bytes:
    """The decoded body. ``read1`` returns what one socket read brought (``iter_content``
    would wait for a whole chunk, however slowly it drips), so the deadline is checked
    at least once per ``read_timeout``."""
    received = bytearray()
    while chunk := raw.read1(_CHUNK, decode_content=True):
        received += chunk
        if len(received) > max_bytes:
            raise BoundedHttpError("too_large", f"sent more than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise BoundedHttpError("too_slow", "took too long to answer")
    return bytes(received)
