"""HTTP/1.1 on a socket, for `jobtoken.action.http.client` (read that module's docstring).

One request per connection (`Connection: close`); responses bounded by size
and by the deadline; `Content-Length`, chunked or read-to-close bodies; https
with the system trust store and hostname checking, through an `HTTPS_PROXY`
with `CONNECT` when one is set (honouring `NO_PROXY`).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from functools import cache
from urllib.parse import unquote, urlsplit

from jobtoken import __version__
from jobtoken.action.deadline import Deadline
from jobtoken.action.errors import HttpError
from jobtoken.wire.grammar import CONTENT_LENGTH_DIGITS, parse_ascii_int

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs ≈5 ms per run
if TYPE_CHECKING:
    import ssl
    from typing import Final, Protocol

    class Request(Protocol):
        @property
        def method(self) -> str: ...
        @property
        def headers(self) -> Mapping[str, str]: ...
        @property
        def body(self) -> bytes: ...


__all__ = ["MAX_HEADERS", "MAX_HEAD_BYTES", "USER_AGENT", "Target", "round_trip"]

MAX_HEAD_BYTES = 32 * 1024
MAX_HEADERS = 100
USER_AGENT = f"jobtoken-action/{__version__}"

_TOKEN_CHARS = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] ([1-9][0-9]{2})(?: [^\r\n]*)?\Z")


class Target:
    """Where a request goes (immutable): `path` includes the query."""

    __slots__ = ("host", "path", "port", "scheme")

    def __init__(self, scheme: str, host: str, port: int, path: str) -> None:
        self.scheme: Final = scheme
        self.host: Final = host
        self.port: Final = port
        self.path: Final = path

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> Target:
        """The target of `url`, which `jobtoken.action.http.client.check_url` accepted."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        assert parts.hostname is not None  # check_url
        port = parts.port or (443 if scheme == "https" else 80)
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        return cls(scheme, parts.hostname, port, path)


def round_trip(
    target: Target, request: Request, deadline: Deadline, max_bytes: int, where: str
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, headers, body)."""
    head = _request_head(target, request, where)
    sock = _connect(target, deadline, where)
    try:
        try:
            sock.settimeout(max(deadline.remaining(), 0.001))
            sock.sendall(head + request.body)
            reader = _Reader(sock, deadline, where)
            status, headers = reader.read_head()
            while 100 <= status < 200:  # interim responses: skip (bounded by the head cap)
                status, headers = reader.read_head()
            if request.method == "HEAD" or status in (204, 304):
                body = b""
            else:
                body = reader.read_body(headers, max_bytes)
        except TimeoutError:
            raise HttpError(f"timed out waiting for {where}", retryable=True) from None
        except OSError as exc:
            raise HttpError(
                f"connection to {where} failed: {_os_reason(exc)}", retryable=True
            ) from None
    finally:
        sock.close()
    return status, headers, body


def _request_head(target: Target, request: Request, where: str) -> bytes:
    if not _TOKEN_CHARS.match(request.method):
        raise HttpError(f"invalid HTTP method for {where}")
    headers = {
        "Host": target.host_header,
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        **request.headers,
        "Connection": "close",
    }
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        headers["Content-Length"] = str(len(request.body))
    lines = [f"{request.method} {target.path} HTTP/1.1"]
    for name, value in headers.items():
        if not _TOKEN_CHARS.match(name) or any(c in value for c in "\r\n\0"):
            raise HttpError(f"a header of the request to {where} contains a line break")
        lines.append(f"{name}: {value}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise HttpError(f"a header of the request to {where} is not Latin-1 text") from None


def _connect(target: Target, deadline: Deadline, where: str) -> socket.socket:
    proxy = _proxy_for(target)
    host, port = (proxy[0], proxy[1]) if proxy else (target.host, target.port)
    remaining = deadline.remaining()
    if remaining <= 0:
        raise HttpError(f"timed out before calling {where}", retryable=True, spent=True)
    try:
        sock = socket.create_connection((host, port), timeout=remaining)
    except TimeoutError:
        raise HttpError(f"timed out connecting to {where}", retryable=True) from None
    except OSError as exc:
        via = f" through the proxy {host}:{port}" if proxy else ""
        raise HttpError(
            f"could not connect to {where}{via}: {_os_reason(exc)}", retryable=True
        ) from None
    if target.scheme == "http":
        return sock
    try:
        if proxy:
            _open_tunnel(sock, target, proxy[2], deadline, where)
        return _tls_context().wrap_socket(sock, server_hostname=target.host)
    except HttpError:
        sock.close()
        raise
    except TimeoutError:
        sock.close()
        raise HttpError(
            f"timed out during the TLS handshake with {where}", retryable=True
        ) from None
    except OSError as exc:
        sock.close()
        reason = getattr(exc, "verify_message", None) or _os_reason(exc)
        # certificate problems do not go away by retrying
        retryable = type(exc).__name__ != "SSLCertVerificationError"
        raise HttpError(f"TLS with {where} failed: {reason}", retryable=retryable) from None


def _tls_context() -> ssl.SSLContext:
    """The system's trust store with hostname checking, TLS 1.2 or later.

    Loading the trust store costs 10 to 40 ms and an exchange makes at least
    two https calls (the runner's token endpoint, the provider), so they share
    one context per trust store setting: the environment variables that
    `load_default_certs` reads are the cache key.
    """
    return _tls_context_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@cache
def _tls_context_for(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    import ssl  # only https pays for it (≈10 ms)

    context = ssl.create_default_context()  # reads SSL_CERT_FILE, SSL_CERT_DIR
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _proxy_for(target: Target) -> tuple[str, int, str | None] | None:
    """(host, port, Proxy-Authorization value) of the HTTPS proxy to use for `target`."""
    if target.scheme != "https":
        return None  # plain http goes to loopback only: never through a proxy
    proxy_url = os.environ.get("https_proxy") or os.environ.get("HTTPS_PROXY")
    if not proxy_url:
        return None
    no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        entry = entry.split(":")[0].lstrip(".")
        if entry == "*" or (entry and (target.host == entry or target.host.endswith("." + entry))):
            return None
    if "://" not in proxy_url:
        proxy_url = "http://" + proxy_url
    try:
        parts = urlsplit(proxy_url)
        port = parts.port or 80
    except ValueError:
        raise HttpError("HTTPS_PROXY is not a valid URL") from None
    if parts.scheme != "http" or not parts.hostname:
        raise HttpError("HTTPS_PROXY must be an http://host:port URL")
    auth = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        import base64  # only behind an authenticating proxy

        auth = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
    return parts.hostname, port, auth


def _open_tunnel(
    sock: socket.socket, target: Target, auth: str | None, deadline: Deadline, where: str
) -> None:
    host = f"[{target.host}]" if ":" in target.host else target.host
    authority = f"{host}:{target.port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", f"User-Agent: {USER_AGENT}"]
    if auth:
        lines.append(f"Proxy-Authorization: {auth}")
    sock.settimeout(max(deadline.remaining(), 0.001))
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    status, _ = _Reader(sock, deadline, f"the proxy for {where}").read_head()
    if status != 200:
        raise HttpError(
            f"the HTTPS proxy refused to connect to {where} (HTTP {status})",
            retryable=status in (502, 503, 504),
        )


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class _Reader:
    """Reads a response from a socket: bounded in size and by the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline, where: str) -> None:
        self.sock = sock
        self.deadline = deadline
        self.where = where
        self.buffer = bytearray()
        self.eof = False

    def _fill(self) -> None:
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
        self.buffer += data

    def _take(self, count: int) -> bytes:
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def read_line(self, limit: int) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if 0 <= end <= limit:
                line = self._take(end + 2)
                return line[:-2]
            if len(self.buffer) > limit:
                raise HttpError(f"{self.where} sent a line longer than {limit} bytes")
            if self.eof:
                raise HttpError(f"{self.where} closed the connection mid-response", retryable=True)
            self._fill()

    def read_exact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            if self.eof:
                raise HttpError(f"{self.where} closed the connection mid-response", retryable=True)
            self._fill()
        return self._take(count)

    def read_head(self) -> tuple[int, dict[str, str]]:
        budget = MAX_HEAD_BYTES
        status_line = self.read_line(budget)
        budget -= len(status_line)
        match = _STATUS_LINE.match(status_line)
        if not match:
            raise HttpError(f"{self.where} did not answer with HTTP/1.x")
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = self.read_line(max(budget, 0))
            budget -= len(line) + 2
            if not line:
                return int(match.group(1)), headers
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or not _TOKEN_CHARS.match(name):
                raise HttpError(f"{self.where} sent a malformed header")
            name = name.lower()
            value = value.strip(" \t")
            if name == "content-length" and headers.get(name, value) != value:
                raise HttpError(f"{self.where} sent conflicting Content-Length headers")
            headers[name] = value
        raise HttpError(f"{self.where} sent more than {MAX_HEADERS} headers")

    def read_body(self, headers: Mapping[str, str], max_bytes: int) -> bytes:
        too_large = HttpError(f"the response from {self.where} is larger than {max_bytes} bytes")
        encoding = headers.get("transfer-encoding")
        if encoding is not None:
            if encoding.lower() != "chunked":
                raise HttpError(f"{self.where} sent an unsupported Transfer-Encoding")
            return self._read_chunked(max_bytes, too_large)
        declared = headers.get("content-length")
        if declared is not None:
            length = parse_ascii_int(declared, CONTENT_LENGTH_DIGITS)
            if length is None:
                raise HttpError(f"{self.where} sent an invalid Content-Length")
            if length > max_bytes:
                raise too_large
            return self.read_exact(length)
        while not self.eof:
            if len(self.buffer) > max_bytes:
                raise too_large
            self._fill()
        if len(self.buffer) > max_bytes:
            raise too_large
        return self._take(len(self.buffer))

    def _read_chunked(self, max_bytes: int, too_large: HttpError) -> bytes:
        body = bytearray()
        while True:
            size_text = self.read_line(1024).split(b";")[0].strip()
            if (
                not size_text
                or len(size_text) > 15
                or not re.fullmatch(rb"[0-9A-Fa-f]+", size_text)
            ):
                raise HttpError(f"{self.where} sent a malformed chunked body")
            size = int(size_text, 16)
            if size == 0:
                break
            if len(body) + size > max_bytes:
                raise too_large
            body += self.read_exact(size)
            if self.read_exact(2) != b"\r\n":
                raise HttpError(f"{self.where} sent a malformed chunked body")
        for _ in range(MAX_HEADERS + 1):  # trailers
            if not self.read_line(MAX_HEAD_BYTES):
                return bytes(body)
        raise HttpError(f"{self.where} sent too many trailers")
