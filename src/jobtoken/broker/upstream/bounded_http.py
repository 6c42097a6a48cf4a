"""One HTTP request from the broker to another server, bounded in size and in time.

The broker fetches from servers it does not control: an issuer's discovery document
and JWKS, and the GitHub contents API (policies). :func:`request_bounded` is the one
synchronous loop that does it (the proxy's connector calls are async, with the same
bounds: ``upstream/proxy_client.py``): no redirects followed, a declared ``Content-Length``
over the cap refused before reading, the body streamed and cut at ``max_bytes``, and
the whole exchange cut at ``total_seconds``. Every failure is a
:class:`BoundedHttpError` whose ``kind`` says which bound was hit and whose text names
no URL, header or body (they may hold secrets): callers phrase their own message
around it.

Public API: :func:`request_bounded`, :class:`BoundedResponse`, :class:`BoundedHttpError`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import requests

from jobtoken.broker.errors import UpstreamFailure

__all__ = ["BoundedHttpError", "BoundedResponse", "request_bounded"]

_CHUNK = 8192
_DIGITS = re.compile(r"[0-9]{1,20}\Z")

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
            declared = response.headers.get("Content-Length")
            if declared is not None and (not _DIGITS.match(declared) or int(declared) > max_bytes):
                raise BoundedHttpError("too_large", f"sent more than {max_bytes} bytes")
            received = bytearray()
            for chunk in response.iter_content(_CHUNK):
                received += chunk
                if len(received) > max_bytes:
                    raise BoundedHttpError("too_large", f"sent more than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise BoundedHttpError("too_slow", "took too long to answer")
            return BoundedResponse(response.status_code, dict(response.headers), bytes(received))
    except requests.RequestException as exc:
        raise BoundedHttpError(
            "unreachable", f"could not be reached ({type(exc).__name__})"
        ) from None
