"""The proxy's connections to the connectors' APIs: one pooled async client per connector.

:class:`UpstreamPool` holds one ``httpx.AsyncClient`` per proxied connector, created
when the app starts (in the event loop that serves requests) and closed when it stops
(the Starlette lifespan). Each client keeps a bounded pool of keep-alive connections,
follows no redirect, and ignores the process environment (``trust_env=False``: no
``HTTP(S)_PROXY``, ``NO_PROXY``, ``SSL_CERT_FILE`` or ``.netrc``).

:meth:`UpstreamPool.send` makes one call with the ``[proxy]`` bounds: connect, read,
write and pool-wait timeouts, a declared ``Content-Length`` over ``max_response_bytes``
refused before reading, the body streamed and cut as soon as it passes the cap, and the
whole call, from the pool wait to the last byte, cut at ``timeout_seconds``. It runs on
the event loop, with no thread hop. Every failure is an :class:`UpstreamError` whose
``kind`` says which bound was hit and whose text names no URL, header or body (they may
hold the credential).

Public API: :class:`UpstreamPool`, :class:`UpstreamResponse`, :class:`UpstreamError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import anyio
import httpx

from jobtoken.broker.config import ProxyConfig
from jobtoken.broker.connectors.model import Connector
from jobtoken.broker.errors import BrokerError
from jobtoken.wire.grammar import CONTENT_LENGTH_DIGITS, parse_ascii_int

__all__ = ["UpstreamError", "UpstreamPool", "UpstreamResponse"]

#: connections per connector, in use at once; a call waits (``pool`` timeout) beyond that
MAX_CONNECTIONS = 64
#: idle keep-alive connections kept per connector, and for how long
MAX_KEEPALIVE_CONNECTIONS = 32
KEEPALIVE_EXPIRY_SECONDS = 30.0
#: at most this long to open a connection, whatever ``timeout_seconds`` says
MAX_CONNECT_SECONDS = 10.0
Failure = Literal["too_large", "too_slow", "unreachable"]
Headers = list[tuple[bytes, bytes]]


class UpstreamError(BrokerError):
    """The call failed or broke a bound; ``kind`` says which: a 502 ``bad_gateway`` whose
    description says what the connector did. The text names no secret."""

    def __init__(self, kind: Failure, detail: str) -> None:
        said = _SAID.get(kind, f"the connector {detail}")
        super().__init__("bad_gateway", said, status=502, reason="upstream_error")
        self.kind, self.detail = kind, detail


_SAID = {
    "too_large": "the connector's response is too large",
    "too_slow": "the connector did not answer in time",
}


@dataclass(frozen=True, repr=False)
class UpstreamResponse:
    status: int
    #: every header as received (name, value), in order
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


class UpstreamPool:
    """One keep-alive ``httpx.AsyncClient`` per proxied connector, bounded by ``config``."""

    def __init__(self, connectors: Mapping[str, Connector], config: ProxyConfig) -> None:
        self._names = tuple(name for name, c in connectors.items() if c.proxied)
        self._config = config
        self._clients: dict[str, httpx.AsyncClient] = {}

    @property
    def clients(self) -> Mapping[str, httpx.AsyncClient]:
        """The open clients by connector name (empty before start and after close)."""
        return dict(self._clients)

    def start(self) -> None:
        """Create the clients; call it in the event loop that will serve the requests."""
        seconds = float(self._config.timeout_seconds)
        timeout = httpx.Timeout(
            connect=min(MAX_CONNECT_SECONDS, seconds), read=seconds, write=seconds, pool=seconds
        )
        limits = httpx.Limits(
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
        )
        for name in self._names:
            if name not in self._clients:
                self._clients[name] = httpx.AsyncClient(
                    timeout=timeout, limits=limits, follow_redirects=False, trust_env=False
                )

    async def aclose(self) -> None:
        """Close every client and its connections; later calls are refused as unreachable."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    async def send(
        self, connector: str, method: str, url: str, headers: Headers, body: bytes
    ) -> UpstreamResponse:
        client = self._clients.get(connector)
        if client is None or client.is_closed:
            raise UpstreamError("unreachable", "could not be reached (the proxy is not running)")
        try:
            with anyio.fail_after(self._config.timeout_seconds):
                async with client.stream(
                    method, url, headers=headers, content=body or None
                ) as response:
                    received = await _read(response, self._config.max_response_bytes)
                    raw = tuple(response.headers.raw)
                    return UpstreamResponse(response.status_code, raw, received)
        except (TimeoutError, httpx.TimeoutException):
            raise UpstreamError("too_slow", "took too long to answer") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise UpstreamError(
                "unreachable", f"could not be reached ({type(exc).__name__})"
            ) from None


async def _read(response: httpx.Response, limit: int) -> bytes:
    """The (decoded) body, refused as soon as it, or its declared length, passes ``limit``."""
    declared = parse_ascii_int(response.headers.get("content-length", "0"), CONTENT_LENGTH_DIGITS)
    if declared is None or declared > limit:
        raise UpstreamError("too_large", f"sent more than {limit} bytes")
    received = bytearray()
    async for chunk in response.aiter_bytes():
        received += chunk
        if len(received) > limit:
            raise UpstreamError("too_large", f"sent more than {limit} bytes")
    return bytes(received)
