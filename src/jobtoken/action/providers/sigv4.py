"""AWS Signature Version 4 on the standard library.

    headers = sign(method="POST", url=url, headers=headers, body=body,
                   credentials=creds, region="us-east-1", service="secretsmanager")

``sign`` returns the headers to send: the caller's headers plus ``Host``,
``X-Amz-Date``, ``X-Amz-Security-Token`` (for temporary credentials) and
``Authorization``. The canonical request is built exactly as botocore's
``SigV4Auth`` builds it (tests hold the two byte-identical):

- the canonical URI is the URL's path with dot segments and empty segments
  removed, percent-encoded again with ``/`` and ``~`` left alone (services
  other than S3 expect the path encoded twice);
- the canonical query is every ``name=value`` pair of the URL's query, sorted;
  the query must already use AWS's encoding (``quote(x, safe="-_.~")``), which
  ``encode_query`` produces;
- every header is signed except the hop-by-hop and tracing ones botocore
  leaves out; names are lower-cased, values trimmed and inner runs of
  whitespace folded to one space;
- the payload hash is the SHA-256 of the body, or the caller's
  ``X-Amz-Content-SHA256`` header when it sets one.

Reference: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

__all__ = ["AwsCredentials", "canonical_request", "encode_query", "sign"]

ALGORITHM = "AWS4-HMAC-SHA256"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"

#: Headers that proxies and tracing add or rewrite in flight; signing them would
#: break the signature (the same list as botocore's SIGNED_HEADERS_BLACKLIST).
UNSIGNED_HEADERS = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)

#: Headers the signer itself sets; a caller passing one is a programming error.
SIGNER_HEADERS = frozenset({"authorization", "date", "x-amz-date", "x-amz-security-token"})


@dataclass(frozen=True)
class AwsCredentials:
    """An access key pair, with the session token of temporary credentials."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def encode_query(params: Iterable[tuple[str, str]]) -> str:
    """A query string in AWS's encoding (RFC 3986 unreserved characters kept)."""
    return "&".join(f"{_encode(name)}={_encode(value)}" for name, value in params)


def sign(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: AwsCredentials,
    region: str,
    service: str,
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    """The headers to send with this request so that AWS accepts it."""
    clashes = sorted(name for name in headers if name.lower() in SIGNER_HEADERS)
    if clashes:
        raise ValueError(f"sign() sets these headers itself: {', '.join(clashes)}")
    when = (now or datetime.datetime.now(datetime.timezone.utc)).astimezone(datetime.timezone.utc)
    timestamp = when.strftime(TIMESTAMP_FORMAT)
    signed = dict(headers)
    if not any(name.lower() == "host" for name in signed):
        signed["Host"] = _host_of(url)
    signed["X-Amz-Date"] = timestamp
    if credentials.session_token:
        signed["X-Amz-Security-Token"] = credentials.session_token

    request = canonical_request(method=method, url=url, headers=signed, body=body)
    scope = f"{timestamp[:8]}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, timestamp, scope, hashlib.sha256(request.encode("utf-8")).hexdigest()]
    )
    key = _signing_key(credentials.secret_access_key, timestamp[:8], region, service)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    signed["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={_signed_header_names(signed)}, Signature={signature}"
    )
    return signed


def canonical_request(*, method: str, url: str, headers: Mapping[str, str], body: bytes) -> str:
    """The canonical request of SigV4 (task 1 of the reference)."""
    parts = urlsplit(url)
    canonical = _canonical_headers(headers)
    payload_hash = next(
        (value for name, value in headers.items() if name.lower() == "x-amz-content-sha256"),
        hashlib.sha256(body).hexdigest(),
    )
    return "\n".join(
        [
            method.upper(),
            quote(_remove_dot_segments(parts.path), safe="/~"),
            _canonical_query(parts.query),
            "".join(f"{name}:{value}\n" for name, value in canonical.items()),
            ";".join(canonical),
            payload_hash,
        ]
    )


# --- internals -------------------------------------------------------------------------------


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = []
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        pairs.append((name, value))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _canonical_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case name -> folded value, sorted by name; repeated names joined by commas."""
    values: dict[str, list[str]] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered not in UNSIGNED_HEADERS:
            values.setdefault(lowered, []).append(" ".join(value.split()))
    return {name: ",".join(values[name]) for name in sorted(values)}


def _signed_header_names(headers: Mapping[str, str]) -> str:
    return ";".join(_canonical_headers(headers))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, and AWS's removal of empty segments (``//``)."""
    if not path:
        return "/"
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and kept else ""
    return first + "/".join(kept) + last


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default_port:
        host = f"{host}:{parts.port}"
    return host


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), day)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")
