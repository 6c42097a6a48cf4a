"""OAuth over HTTP, the parts every broker endpoint shares: bounded body reading,
strict form parsing, client authentication and RFC 6749 §5.2 error responses.

Forms are parsed with ``urllib.parse.parse_qs`` (``strict_parsing``, a field-count cap)
after the body has been read under a size cap, so no multipart parser is involved and
an oversized body is refused before it is buffered. A parameter sent twice is an
``invalid_request`` (RFC 6749 §3.1). Every response carries ``Cache-Control: no-store``.

Public API: :func:`read_body`, :func:`read_form`,
:func:`oauth_json`, :func:`error_response`, :func:`basic_credentials`, :func:`safe_text`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse

from jobtoken.broker.errors import BrokerError
from jobtoken.wire.grammar import CONTENT_LENGTH_DIGITS, parse_ascii_int

__all__ = [
    "basic_credentials",
    "error_response",
    "oauth_json",
    "read_body",
    "read_form",
    "safe_text",
]

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 16
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")  # RFC 6749 error_description charset


def safe_text(text: str, limit: int = 300) -> str:
    """Text reduced to RFC 6749's error charset; also harmless in a workflow log."""
    return _UNSAFE.sub("?", text)[:limit].replace("::", ": :")


def oauth_json(body: Mapping[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(dict(body), status_code=status, headers=NO_STORE)


def error_response(exc: BrokerError) -> JSONResponse:
    body = {"error": exc.error, "error_description": safe_text(exc.description)}
    return JSONResponse(body, status_code=exc.status, headers={**NO_STORE, **exc.headers})


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it is larger than ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        length = parse_ascii_int(declared, CONTENT_LENGTH_DIGITS)
        if length is None:
            raise BrokerError("invalid_request", "invalid Content-Length")
        if length > limit:
            raise BrokerError("invalid_request", f"request body over {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BrokerError("invalid_request", f"request body over {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """A bounded ``application/x-www-form-urlencoded`` body as single-valued fields."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise BrokerError("invalid_request", f"the body must be {FORM_TYPE}")
    body = await read_body(request, limit)
    if not body:
        return {}
    try:
        fields = parse_qs(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
            max_num_fields=MAX_FORM_FIELDS,
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError):
        raise BrokerError(
            "invalid_request", "the form body is malformed or has too many fields"
        ) from None
    repeated = sorted(name for name, values in fields.items() if len(values) > 1)
    if repeated:
        raise BrokerError("invalid_request", f"parameter {safe_text(repeated[0], 40)} sent twice")
    return {name: values[0] for name, values in fields.items()}


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """HTTP Basic client credentials (RFC 6749 §2.3.1: both parts form-urlencoded)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value or len(value) > 1024:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
