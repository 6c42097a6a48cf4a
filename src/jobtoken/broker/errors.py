r"""The one root of the broker's errors: :class:`BrokerError` carries, as data, everything
an answer and an audit record need, so that a refusal raised anywhere becomes a response
at the edge only (``http/oauth.py``'s :func:`~jobtoken.broker.http.oauth.error_response`,
and the proxy's answers), never by translating one exception into another on the way.

- ``error``: the OAuth error code the client reads (RFC 6749 §5.2, RFC 8693 §2.2.2,
  RFC 6750 §3.1, RFC 7009 §2.2.1: :data:`~jobtoken.wire.oauth_terms.ERROR_CODES`), or
  one of the proxy's two answers no RFC names (:data:`PROXY_CODES`);
- ``description``: what to fix, for the caller; never a secret, never a value it sent
  unneutralized;
- ``status``: the HTTP status;
- ``reason``: the audit and metrics code (by default the error code);
- ``retry_after``: seconds the caller should wait (a 429 or 503), 0 for none.

Each room's errors are subclasses that fix what they always mean (an
:class:`~jobtoken.broker.oidc.errors.InvalidIdToken` is always ``invalid_grant``). The
failures that never reach a client as such (a config, a file, the store, an outbound
call that its caller phrases again) are :class:`BrokerFailure`\ s: one message, and
the answer their class states (``server_error`` 500 unless it says otherwise).

A :class:`~jobtoken.broker.store.records.StoreError` is a failure of the broker, never
a refusal of the request: every edge lets it pass to its outage answer (503 with
``Retry-After``, ``http/store_outage.py``), and no refusal is audited for it.

Public API: :class:`BrokerError`, :class:`BrokerFailure`, :class:`UpstreamFailure`,
:data:`PROXY_CODES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from jobtoken.wire.oauth_terms import ERROR_CODES

__all__ = ["PROXY_CODES", "BrokerError", "BrokerFailure", "UpstreamFailure"]

#: the proxy's answers that no OAuth RFC names: no such proxied connector (404) and a
#: connector that did not answer usably (502)
PROXY_CODES = frozenset({"not_found", "bad_gateway"})


class BrokerError(Exception):
    """A refusal or failure of the broker, with its answer as data."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        reason: str = "",
        retry_after: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if error not in ERROR_CODES and error not in PROXY_CODES:
            raise ValueError(f"{error!r} is not an OAuth error code")
        super().__init__(description)
        self.error, self.description, self.status = error, description, status
        self.reason = reason or error
        self.retry_after = retry_after
        self._headers = dict(headers or {})

    @property
    def headers(self) -> dict[str, str]:
        """The answer's extra headers: ``Retry-After`` when there is a wait."""
        if self.retry_after > 0:
            return {**self._headers, "Retry-After": str(self.retry_after)}
        return dict(self._headers)


class BrokerFailure(BrokerError):
    """A failure with one message; its class states the answer (``code``, ``http_status``)."""

    code: ClassVar[str] = "server_error"
    http_status: ClassVar[int] = 500

    def __init__(self, description: str) -> None:
        super().__init__(self.code, description, status=self.http_status)


class UpstreamFailure(BrokerError):
    """A call to another server failed; ``kind`` says how. Where one reaches a client as
    it stands, no answer in time is a wait (503 ``temporarily_unavailable``, with the
    server's ``Retry-After`` when it sent one) and anything else a bad answer (502
    ``server_error``); most callers phrase their own refusal around ``kind``. ``text``
    names no URL, header or body (they may hold secrets)."""

    WAITS: ClassVar[frozenset[str]] = frozenset({"unavailable", "unreachable", "too_slow"})

    def __init__(self, kind: str, text: str, *, retry_after: int = 0) -> None:
        if kind in self.WAITS:
            super().__init__(
                "temporarily_unavailable", text, status=503, reason=kind, retry_after=retry_after
            )
        else:
            super().__init__("server_error", text, status=502, reason=kind)
        self.kind, self.text = kind, text
