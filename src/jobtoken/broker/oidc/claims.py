"""The claims of a GitHub Actions ID token: which are required, and what each must look like.

The tables here drive step 5 of ``jobtoken.broker.oidc.verifier`` (:data:`REQUIRED_CLAIMS`)
and :func:`read_claims` is its step 7 (claim values): it returns the
:class:`VerifiedClaims` the verifier hands out, or raises ``InvalidIdToken``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from jobtoken.broker.oidc.errors import InvalidIdToken
from jobtoken.wire.grammar import NUMERIC_ID

__all__ = [
    "MAX_CLAIMS",
    "MAX_JTI_LENGTH",
    "OPTIONAL_ID_CLAIMS",
    "REQUIRED_CLAIMS",
    "REQUIRED_ID_CLAIMS",
    "TIME_CLAIMS",
    "VerifiedClaims",
    "read_claims",
]

REQUIRED_CLAIMS = (
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "sub",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "run_id",
    "run_attempt",
)
TIME_CLAIMS = frozenset({"exp", "iat", "nbf"})
REQUIRED_ID_CLAIMS = ("repository_id", "repository_owner_id", "run_id", "run_attempt")
OPTIONAL_ID_CLAIMS = ("check_run_id", "actor_id", "run_number", "enterprise_id")
MAX_CLAIMS = 100
MAX_JTI_LENGTH = 128

_REPOSITORY = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/([A-Za-z0-9._-]{1,100})")
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


@dataclass(frozen=True)
class VerifiedClaims:
    """The claims of a verified ID token. ``claims`` holds every claim, for policy and audit."""

    iss: str
    sub: str
    aud: str
    jti: str
    exp: int
    iat: int
    nbf: int
    repository: str
    repository_id: str
    repository_owner: str
    repository_owner_id: str
    run_id: str
    run_attempt: str
    check_run_id: str | None
    claims: Mapping[str, str | int] = field(repr=False)


def read_claims(claims: Mapping[str, object]) -> VerifiedClaims:
    if len(claims) > MAX_CLAIMS:
        raise InvalidIdToken("invalid_claim", f"the token has more than {MAX_CLAIMS} claims")
    strings: dict[str, str] = {}
    for name, value in claims.items():
        if name in TIME_CLAIMS:
            continue
        if not isinstance(value, str):
            raise InvalidIdToken("invalid_claim", f"the claim {name!r} must be a string")
        if _has_control_character(name) or _has_control_character(value):
            raise InvalidIdToken("control_character", f"the claim {name!r} has control characters")
        strings[name] = value
    for name in REQUIRED_ID_CLAIMS + OPTIONAL_ID_CLAIMS:
        if name in OPTIONAL_ID_CLAIMS and strings.get(name) == "":
            continue  # GitHub's way of saying "none" (e.g. enterprise_id outside an enterprise)
        if name in strings and not NUMERIC_ID.match(strings[name]):
            raise InvalidIdToken("invalid_claim", f"the claim {name!r} must be a string of digits")
    repository = _REPOSITORY.fullmatch(strings["repository"])
    if repository is None or repository.group(1) != strings["repository_owner"]:
        raise InvalidIdToken(
            "invalid_claim", "the claim 'repository' must be owner/name of repository_owner"
        )
    jti = strings["jti"]
    if not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise InvalidIdToken("invalid_claim", f"the jti must be 1 to {MAX_JTI_LENGTH} characters")
    exp, iat, nbf = claims["exp"], claims["iat"], claims["nbf"]
    assert isinstance(exp, int)
    assert isinstance(iat, int)
    assert isinstance(nbf, int)
    return VerifiedClaims(
        iss=strings["iss"],
        sub=strings["sub"],
        aud=strings["aud"],
        jti=jti,
        exp=exp,
        iat=iat,
        nbf=nbf,
        repository=strings["repository"],
        repository_id=strings["repository_id"],
        repository_owner=strings["repository_owner"],
        repository_owner_id=strings["repository_owner_id"],
        run_id=strings["run_id"],
        run_attempt=strings["run_attempt"],
        check_run_id=strings.get("check_run_id") or None,
        claims=MappingProxyType({**strings, "exp": exp, "iat": iat, "nbf": nbf}),
    )


_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _has_control_character(text: str) -> bool:
    if text.isascii():  # the usual case, and the only control characters of ASCII (Cc)
        return _ASCII_CONTROL.search(text) is not None
    return any(
        unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs") or char in _BIDI_CONTROLS
        for char in text
    )
