"""Connecting an OAuth account: the authorization-code flow with PKCE on a loopback
redirect (RFC 6749 §4.1, RFC 7636 S256, RFC 8252 §7.3), for ``jobtoken broker connect``.

:class:`LoopbackAuthorization` listens on ``http://127.0.0.1:PORT/callback`` (port 0:
any free one, which RFC 8252 §7.3 says the provider must accept for a loopback
redirect; a fixed ``--port`` for providers that register the exact URI). The redirect
URI names ``127.0.0.1`` or, for providers that take plain http only for that name
(HubSpot), ``localhost`` (``OAuthSettings.redirect_host``, ``--redirect-host``); the
listener binds the loopback address 127.0.0.1 either way. It gives the
authorization URL with a fresh ``state`` and code challenge, and waits for the one
redirect that carries that ``state`` (compared in constant time). A redirect with
another ``state`` is refused and the wait goes on; ``error=…`` ends it. The listener
answers only ``GET /callback``, reads no body, and stops at the deadline whatever a
client does: each connection is served in its own thread with a socket timeout of
``CONNECTION_TIMEOUT_SECONDS``, at most ``MAX_CONNECTIONS`` at once, so a local process
that connects and sends nothing neither holds the command past ``--timeout`` nor keeps
the browser's redirect waiting behind it.

The code is then exchanged by ``oauth_client.AuthorizationServerClient.authorization_code`` with
the verifier. Nothing here prints or logs a code or a token.

Public API: :class:`LoopbackAuthorization`, :class:`AuthorizationFailed`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import socket
from urllib.parse import parse_qs, urlencode, urlsplit

from jobtoken.broker.connectors.model import REDIRECT_HOSTS, OAuthSettings
from jobtoken.broker.errors import BrokerFailure

__all__ = ["AuthorizationFailed", "LoopbackAuthorization"]

#: how long one connection to the callback may take to send its request
CONNECTION_TIMEOUT_SECONDS = 5.0
#: connections served at once; more are closed unanswered
MAX_CONNECTIONS = 8

_ERROR_CODE = re.compile(r"[a-z_]{1,64}\Z")
_PAGE = (
    "<!doctype html><meta charset=utf-8><title>jobtoken</title>"
    "<p>{}</p><p>You can close this window.</p>"
)


class AuthorizationFailed(BrokerFailure):
    """The user refused, the redirect never came, or it was not ours."""


@dataclass
class _Outcome:
    code: str = ""
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)


class LoopbackAuthorization:
    """One authorization request and its loopback redirect (module docstring)."""

    def __init__(self, oauth: OAuthSettings, *, port: int = 0, host: str = "") -> None:
        if not oauth.authorize_url:
            raise AuthorizationFailed("the connector's [oauth] table has no authorize_url")
        host = host or oauth.redirect_host
        if host not in REDIRECT_HOSTS:
            raise AuthorizationFailed(
                f"the redirect host must be one of {', '.join(REDIRECT_HOSTS)}"
            )
        self._oauth = oauth
        self.state = secrets.token_urlsafe(24)
        self.verifier = secrets.token_urlsafe(48)  # 64 characters (RFC 7636 §4.1: 43 to 128)
        self._outcome = _Outcome()
        self._taken = threading.Lock()
        # the loopback address, whatever name the redirect URI gives it (RFC 8252 §7.3, §8.3)
        self._server = _CallbackServer(("127.0.0.1", port), self._handler())
        self._server.timeout = 0.2
        self.redirect_uri = f"http://{host}:{self._server.server_address[1]}/callback"

    @property
    def authorization_url(self) -> str:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest())
        query = {
            "response_type": "code",
            "client_id": self._oauth.client_id,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "code_challenge": challenge.rstrip(b"=").decode("ascii"),
            "code_challenge_method": "S256",
        }
        if self._oauth.scopes:
            query["scope"] = self._oauth.scope_separator.join(self._oauth.scopes)
        query.update(dict(self._oauth.authorize_params))
        separator = "&" if urlsplit(self._oauth.authorize_url).query else "?"
        return self._oauth.authorize_url + separator + urlencode(query)

    def wait(self, timeout_seconds: float) -> str:
        """The authorization code, once the browser has been redirected back."""
        deadline = time.monotonic() + timeout_seconds
        try:
            while not self._outcome.done.is_set() and time.monotonic() < deadline:
                self._server.handle_request()
        finally:
            self._server.server_close()
        return self._code(
            f"no redirect to {self.redirect_uri} within {timeout_seconds:g} s; open the "
            "authorization URL in a browser on this machine, or use --no-browser"
        )

    def code_from_pasted(self, pasted: str) -> str:
        """The authorization code from the redirect URL an operator pasted from the
        browser's address bar (``connect --no-browser``), checked as the listener checks
        a redirect: the same URI, one ``state`` equal to ours (constant time)."""
        self.close()  # nothing listens: the browser's redirect fails, its URL is the input
        url = pasted.strip()
        try:
            parts = urlsplit(url)
            ours = len(url) <= 8192 and (
                f"{parts.scheme}://{parts.netloc}{parts.path}" == self.redirect_uri
            )
        except ValueError:
            ours = False
        if not ours:
            raise AuthorizationFailed(
                f"the pasted text is not a redirect to {self.redirect_uri}; paste the whole "
                "address from the browser's address bar"
            )
        status, _ = self._take(f"{parts.path}?{parts.query}")
        if status != 200 and not self._outcome.done.is_set():
            raise AuthorizationFailed(
                "the pasted redirect is not for this connect (its state differs); run "
                "connect again and approve the URL it prints"
            )
        return self._code("the pasted redirect carried no code")

    def close(self) -> None:
        self._server.server_close()

    def _code(self, none: str) -> str:
        if self._outcome.error:
            raise AuthorizationFailed(f"the provider answered {self._outcome.error}")
        if not self._outcome.code:
            raise AuthorizationFailed(none)
        return self._outcome.code

    def _take(self, target: str) -> tuple[int, str]:
        """One redirect target (``/callback?…``): the status and text to answer with;
        records the outcome when it carries our ``state``, once."""
        parts = urlsplit(target)
        if parts.path != "/callback" or len(target) > 8192:
            return 404, "Not the jobtoken callback."
        try:
            query = parse_qs(parts.query, strict_parsing=False, max_num_fields=16)
        except ValueError:
            return 400, "Malformed callback."
        states = query.get("state", [])
        if len(states) != 1 or not hmac.compare_digest(states[0].encode(), self.state.encode()):
            return 400, "This redirect is not for the waiting jobtoken command."
        error, code = query.get("error", [""])[0], query.get("code", [""])[0]
        with self._taken:
            if self._outcome.done.is_set():
                return 409, "This authorization was already answered."
            if error:
                self._outcome.error = error if _ERROR_CODE.match(error) else "an error"
                answer = 400, "The provider did not authorize jobtoken."
            elif code and len(code) <= 4096:
                self._outcome.code = code
                answer = 200, "jobtoken is connected."
            else:
                self._outcome.error = "a redirect without a code"
                answer = 400, "The redirect carried no code."
            self._outcome.done.set()
        return answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        flow = self

        class Callback(BaseHTTPRequestHandler):
            timeout = CONNECTION_TIMEOUT_SECONDS  # a socket timeout on every read and write

            def do_GET(self) -> None:
                self._answer(*flow._take(self.path))

            def _answer(self, status: int, text: str) -> None:
                body = _PAGE.format(text).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # the query holds the code: never logged

        return Callback


class _CallbackServer(ThreadingHTTPServer):
    """One daemon thread per connection, at most ``MAX_CONNECTIONS`` at once; closing
    the server does not wait for them (each ends within its socket timeout)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: socket | tuple[bytes, socket], client: object) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client)

    def process_request_thread(
        self, request: socket | tuple[bytes, socket], client: object
    ) -> None:
        try:
            super().process_request_thread(request, client)
        finally:
            self._slots.release()

    def handle_error(self, request: socket | tuple[bytes, socket], client: object) -> None:
        return  # a client that hung up or timed out: nothing to print, nothing to log
