"""Errors the action reports to the user.

Every message is written for the workflow author: it says what went wrong and
what to change. No message ever contains a secret (a token, an ID token, a
credential); text that came from a server is sanitized by the raiser with
`jobtoken.action.runtime.neutralize` before it is put into a message.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ActionError",
    "HttpError",
    "InputError",
    "OidcError",
    "ProviderError",
]


class ActionError(Exception):
    """Base of every error the action turns into one `::error` line."""

    #: short title shown in the annotation
    title = "jobtoken"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(ActionError):
    """An input of the action is missing or not allowed. Raised before any network call."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"input `{name}`: {message}")
        self.input_name = name
        self.title = f"jobtoken: invalid input `{name}`"


class HttpError(ActionError):
    """A request could not be completed (network, timeout, size, redirect, TLS)."""

    title = "jobtoken: request failed"

    def __init__(self, message: str, *, retryable: bool = False, spent: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        #: the time ran out before the request was sent: an earlier attempt's error,
        #: if there is one, says more about why
        self.spent = spent


class OidcError(ActionError):
    """The runner did not give us an OIDC ID token."""

    title = "jobtoken: no OIDC ID token"


class ProviderError(ActionError):
    """The provider refused or failed the exchange (or the revocation).

    ``denied`` is true when the provider answered but refused (a policy or
    trust-relationship mismatch): the action then prints the non-secret claims
    of the ID token so that the author can see why no rule matched. ``details``
    holds extra non-secret, already sanitized key/value lines for that block.
    """

    title = "jobtoken: exchange failed"

    def __init__(
        self, message: str, *, denied: bool = False, details: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.denied = denied
        self.details = dict(details or {})
