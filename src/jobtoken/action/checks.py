"""Fail-closed checks on an issued token, each with its own error text.

Public API: `Expectations`, `check_issued_token(token, expect) -> list[str]`
(the failures, empty when the token passes) and `CHECKS`, the table they come
from: (name, check) pairs, where a check returns None or the reason.

Times are relative: `expires_in` is seconds from when the response arrived, so
`now < expires-at <= now + min(ttl, max-ttl) + SKEW` is
`0 < expires_in <= lifetime_cap + SKEW`, and `expires-at - now >= min-remaining`
is `expires_in >= min_remaining`.

No reason ever contains the token: only its length, types, scopes and times.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from jobtoken.action.provider import IssuedToken
from jobtoken.wire.text import neutralize

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs ≈5 ms per run
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "CHECKS",
    "MAX_TOKEN_LENGTH",
    "MIN_TOKEN_LENGTH",
    "SKEW",
    "Expectations",
    "check_issued_token",
]

MIN_TOKEN_LENGTH = 8
MAX_TOKEN_LENGTH = 16 * 1024
#: tolerance in seconds between the provider's clock and ours
SKEW = 10
_PRINTABLE_NO_SPACE = re.compile(r"^[\x21-\x7e]+\Z")


class Expectations:
    """What the issued token is checked against (immutable)."""

    __slots__ = (
        "allow_no_expiry",
        "allowed_scopes",
        "issued_token_types",
        "lifetime_cap",
        "min_remaining",
        "requested_scopes",
        "token_type",
    )

    def __init__(
        self,
        requested_scopes: tuple[str, ...],
        allowed_scopes: frozenset[str] | None,
        lifetime_cap: int,
        min_remaining: int,
        token_type: str | None,
        issued_token_types: frozenset[str] | None,
        allow_no_expiry: bool,
    ) -> None:
        self.requested_scopes: Final = requested_scopes
        self.allowed_scopes: Final = allowed_scopes
        #: seconds: min(ttl, max-ttl)
        self.lifetime_cap: Final = lifetime_cap
        self.min_remaining: Final = min_remaining
        self.token_type: Final = token_type
        self.issued_token_types: Final = issued_token_types
        self.allow_no_expiry: Final = allow_no_expiry


Check = Callable[[IssuedToken, Expectations], "str | None"]


def _access_token_present(token: IssuedToken, expect: Expectations) -> str | None:
    if not token.access_token:
        return "the provider returned no access token"
    return None


def _access_token_shape(token: IssuedToken, expect: Expectations) -> str | None:
    value = token.access_token
    if not value:
        return None  # reported by the presence check
    if not _PRINTABLE_NO_SPACE.match(value):
        return (
            "the access token contains whitespace, control or non-ASCII characters "
            "(it could break the step output or the log mask)"
        )
    if not MIN_TOKEN_LENGTH <= len(value) <= MAX_TOKEN_LENGTH:
        return (
            f"the access token is {len(value)} characters long; "
            f"expected {MIN_TOKEN_LENGTH} to {MAX_TOKEN_LENGTH}"
        )
    return None


def _token_type(token: IssuedToken, expect: Expectations) -> str | None:
    if expect.token_type is None or token.token_type.lower() == expect.token_type.lower():
        return None
    return f"token_type is {_shown(token.token_type)}; expected {expect.token_type}"


def _issued_token_type(token: IssuedToken, expect: Expectations) -> str | None:
    accepted = expect.issued_token_types
    if accepted is None or token.issued_token_type in accepted:
        return None
    return (
        f"issued_token_type is {_shown(token.issued_token_type or '(missing)')}; "
        f"expected {' or '.join(sorted(accepted))}"
    )


def _expires_in_valid(token: IssuedToken, expect: Expectations) -> str | None:
    if token.expires_in is None:
        if expect.allow_no_expiry:
            return None
        return (
            "the provider said nothing about when the token expires; a token without an "
            "expiry is refused unless allow-no-expiry: true"
        )
    if isinstance(token.expires_in, bool) or not isinstance(token.expires_in, int):
        return "expires_in is not an integer number of seconds"
    if token.expires_in <= 0:
        return f"the token is already expired (expires_in {token.expires_in})"
    return None


def _lifetime_within_cap(token: IssuedToken, expect: Expectations) -> str | None:
    life = token.expires_in
    if not isinstance(life, int) or isinstance(life, bool) or life <= 0:
        return None  # reported by the expires_in check
    if life > expect.lifetime_cap + SKEW:
        return (
            f"the token lives {life} s, longer than the {expect.lifetime_cap} s asked for "
            "(min of ttl and max-ttl)"
        )
    return None


def _min_remaining(token: IssuedToken, expect: Expectations) -> str | None:
    life = token.expires_in
    if not isinstance(life, int) or isinstance(life, bool) or life <= 0:
        return None
    if life < expect.min_remaining:
        return (
            f"the token expires in {life} s, sooner than min-remaining ({expect.min_remaining} s)"
        )
    return None


def _granted_within_requested(token: IssuedToken, expect: Expectations) -> str | None:
    if token.scopes is None:
        return None  # absent scope means exactly the requested set
    extra = sorted(set(token.scopes) - set(expect.requested_scopes))
    if extra:
        return f"the provider granted scopes that were not requested: {_shown(' '.join(extra))}"
    return None


def _granted_within_allowed(token: IssuedToken, expect: Expectations) -> str | None:
    if expect.allowed_scopes is None:
        return None
    granted = expect.requested_scopes if token.scopes is None else token.scopes
    outside = sorted(set(granted) - expect.allowed_scopes)
    if outside:
        return f"the token has scopes outside allowed-scopes: {_shown(' '.join(outside))}"
    return None


def _shown(text: str) -> str:
    """A value from the provider (not the token) quoted for an error, bounded and safe."""
    return repr(neutralize(text, limit=120))


CHECKS: tuple[tuple[str, Check], ...] = (
    ("access-token-present", _access_token_present),
    ("access-token-shape", _access_token_shape),
    ("token-type", _token_type),
    ("issued-token-type", _issued_token_type),
    ("expires-in", _expires_in_valid),
    ("lifetime-within-ttl", _lifetime_within_cap),
    ("min-remaining", _min_remaining),
    ("granted-within-requested", _granted_within_requested),
    ("granted-within-allowed", _granted_within_allowed),
)


def check_issued_token(token: IssuedToken, expect: Expectations) -> list[str]:
    """Every failed check's reason; empty when the token may be handed to the job."""
    return [reason for _, check in CHECKS if (reason := check(token, expect)) is not None]
