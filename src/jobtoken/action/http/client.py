"""The action's HTTP client: HTTPS only, bounded in time and size, retried with jitter.

Public API (what providers use):

- `Deadline` — the action's overall time budget; every call takes one.
- `check_url(url)` — https, or http to a loopback host only; no user info.
- `Request`, `form_request(...)`, `json_request(...)` — what to send.
- `send(request, deadline=...)` — one attempt; same-origin redirects of GET only.
- `fetch(make_request, deadline=...)` — `send` with retries: on network errors,
  429 and 5xx, with full-jitter exponential backoff, calling `make_request()`
  again for every attempt (so an exchange can put a fresh ID token in each).
- `Response.json_object(what)` — the body as a JSON object, or a readable error.
- `describe_url(url)` — scheme, host and path only, for messages.

Every failure is an `HttpError` whose text names the host and what to do, never
a header, a body or a query string (they may hold secrets).

The wire protocol (`jobtoken.action.http.connection`) is HTTP/1.1 over `socket` (+ `ssl`
for https, with the system's trust store and hostname checking) rather than
`http.client`: importing `http.client` costs more (≈40 ms, its email parser)
than the whole exchange is allowed to take.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlencode, urljoin, urlsplit

from jobtoken.action.deadline import Deadline
from jobtoken.action.errors import HttpError
from jobtoken.action.http.connection import Target, round_trip
from jobtoken.wire.grammar import parse_ascii_int
from jobtoken.wire.strict_json import DuplicateKeyError, StrictJsonError, loads_strict

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs ≈5 ms per run
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_RETRY",
    "Deadline",
    "Request",
    "Response",
    "RetryPolicy",
    "check_url",
    "describe_url",
    "fetch",
    "form_request",
    "is_loopback_host",
    "json_request",
    "send",
]

#: default cap on a response body
DEFAULT_MAX_BYTES = 256 * 1024
MAX_REDIRECTS = 3


class Request:
    """What to send (immutable)."""

    __slots__ = ("body", "headers", "method", "url")

    def __init__(
        self, method: str, url: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> None:
        self.method: Final = method
        self.url: Final = url
        self.headers: Final[Mapping[str, str]] = {} if headers is None else headers
        self.body: Final = body


class Response:
    """What came back (immutable)."""

    __slots__ = ("body", "headers", "status", "url")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes, url: str) -> None:
        self.status: Final = status
        #: header names lower-cased; a repeated header keeps its last value
        self.headers: Final = headers
        self.body: Final = body
        self.url: Final = url

    def json_object(self, what: str) -> dict[str, object]:
        """The body as a JSON object; `what` names the server in the error."""
        try:
            value = loads_strict(self.body)
        except DuplicateKeyError:
            raise HttpError(
                f"{what} answered HTTP {self.status} with JSON that repeats a key, which "
                f"two readers could read differently: refused ({describe_url(self.url)})"
            ) from None
        except StrictJsonError:
            raise HttpError(
                f"{what} answered HTTP {self.status} with a body that is not JSON "
                f"({describe_url(self.url)})"
            ) from None
        if not isinstance(value, dict):
            raise HttpError(
                f"{what} answered HTTP {self.status} with JSON that is not an object "
                f"({describe_url(self.url)})"
            )
        return value


class RetryPolicy:
    """Full-jitter exponential backoff: sleep uniform(0, min(max_delay, base_delay·2^n))."""

    __slots__ = ("attempt_timeout", "attempts", "base_delay", "max_delay")

    def __init__(
        self,
        attempts: int = 4,
        base_delay: float = 0.25,
        max_delay: float = 4.0,
        attempt_timeout: float = 10.0,
    ) -> None:
        self.attempts: Final = attempts
        self.base_delay: Final = base_delay
        self.max_delay: Final = max_delay
        #: cap on one attempt (connect + send + receive), inside the overall deadline
        self.attempt_timeout: Final = attempt_timeout


DEFAULT_RETRY = RetryPolicy()


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (written as an IP literal, not a name resolving there)."""
    host = host.strip("[]").lower()
    if host in ("localhost", "::1", "0:0:0:0:0:0:0:1"):
        return True
    octets = [parse_ascii_int(octet, 3) for octet in host.split(".")]
    return len(octets) == 4 and octets[0] == 127 and all(o is not None and o <= 255 for o in octets)


def check_url(url: str) -> str:
    """`url` if it is https (or http to a loopback host) with a host and no user info.

    Raises `ValueError` with the reason (callers turn it into an `InputError`).
    """
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an https:// URL with a host, e.g. https://tokens.example.com")
    if scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError("must use https:// (http:// is allowed only for 127.0.0.1/localhost)")
    if "@" in parts.netloc:
        raise ValueError("must not contain a user name or password")
    if port == 0:
        raise ValueError("has an invalid port")
    if parts.fragment:
        raise ValueError("must not contain a #fragment")
    return url


def describe_url(url: str) -> str:
    """scheme://host[:port]/path of `url`: no user info, no query, bounded length."""
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or "?"
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        text = f"{parts.scheme}://{netloc}{parts.path}"
    except ValueError:
        text = "an invalid URL"
    return text if len(text) <= 200 else text[:199] + "…"


def form_request(
    url: str,
    fields: Mapping[str, str] | Sequence[tuple[str, str]],
    headers: Mapping[str, str] | None = None,
) -> Request:
    """A POST of `application/x-www-form-urlencoded` fields."""
    body = urlencode(fields).encode("ascii")
    all_headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    return Request("POST", url, all_headers, body)


def json_request(
    method: str, url: str, payload: object, headers: Mapping[str, str] | None = None
) -> Request:
    """A request whose body is `payload` as JSON."""
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return Request(method, url, {"Content-Type": "application/json", **(headers or {})}, body)


def fetch(
    make_request: Callable[[], Request],
    *,
    deadline: Deadline,
    retry: RetryPolicy = DEFAULT_RETRY,
    max_bytes: int = DEFAULT_MAX_BYTES,
    sleep: Callable[[float], None] = time.sleep,
) -> Response:
    """`send` with retries on network errors, 429 and 5xx, within `deadline`.

    Returns the last response when every attempt got a retryable status, so
    that the caller can report the server's error body.
    """
    failure: HttpError | None = None
    for attempt in range(retry.attempts):
        last = attempt == retry.attempts - 1
        request = make_request()
        response: Response | None = None
        try:
            response = send(
                request, deadline=deadline.within(retry.attempt_timeout), max_bytes=max_bytes
            )
        except HttpError as exc:
            if exc.spent and failure is not None:
                raise failure from None  # the cause, not "no time was left to retry"
            if not exc.retryable or last or deadline.expired():
                raise
            failure = exc
        else:
            if not _retryable_status(response.status) or last:
                return response
        delay = _uniform(min(retry.max_delay, retry.base_delay * 2**attempt))
        if response is not None:
            delay = max(delay, min(_retry_after(response), retry.max_delay))
        if deadline.remaining() <= delay:
            if response is not None:
                return response
            assert failure is not None
            raise failure
        sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def send(request: Request, *, deadline: Deadline, max_bytes: int = DEFAULT_MAX_BYTES) -> Response:
    """One request; follows redirects of a GET only within the same origin."""
    url = request.url
    for _ in range(MAX_REDIRECTS + 1):
        target = _target(url)
        status, headers, body = round_trip(target, request, deadline, max_bytes, describe_url(url))
        response = Response(status, headers, body, url)
        if response.status not in (301, 302, 303, 307, 308):
            return response
        location = response.headers.get("location", "")
        next_url = urljoin(url, location)
        if request.method != "GET" or not location:
            raise HttpError(
                f"{describe_url(url)} answered with a redirect (HTTP {response.status}); "
                "configure the final URL instead"
            )
        try:
            same_origin = _target(next_url).origin == target.origin
        except HttpError:
            same_origin = False
        if not same_origin:
            raise HttpError(
                f"{describe_url(url)} redirected to another host or scheme "
                f"({describe_url(next_url)}); jobtoken follows redirects only within "
                "the same host: configure the final URL instead"
            )
        url = next_url
    raise HttpError(f"{describe_url(request.url)} redirected more than {MAX_REDIRECTS} times")


def _uniform(upper: float) -> float:
    """A uniform random float in [0, upper] (full jitter), from the OS's randomness."""
    return int.from_bytes(os.urandom(4), "big") / 0xFFFFFFFF * upper


def _retryable_status(status: int) -> bool:
    # 501 Not Implemented: the server does not do this at all; asking again cannot help
    return status == 429 or (500 <= status <= 599 and status != 501)


def _retry_after(response: Response) -> float:
    # delay-seconds only (an HTTP-date or anything else: 0, the backoff's own wait)
    return float(parse_ascii_int(response.headers.get("retry-after", ""), 5) or 0)


def _target(url: str) -> Target:
    try:
        check_url(url)
    except ValueError as exc:
        raise HttpError(f"refusing to call {describe_url(url)}: the URL {exc}") from None
    return Target.parse(url)
