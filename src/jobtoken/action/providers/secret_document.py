"""The connector secret contract shared by the secret-manager providers.

A connector secret stored in Vault/OpenBao, AWS Secrets Manager, GCP Secret
Manager or Azure Key Vault is one of:

- a JSON document ``{"token": "…", "scopes": ["a", "b"], "expires_at": "2026-…Z"}``
  (``scopes`` may also be one space-separated string; ``expires_at`` an RFC 3339
  time or a number of seconds since the epoch; no other keys are allowed);
- a plain string, the token itself, whose scopes and expiry come from the
  secret's metadata under the keys ``jobtoken-scopes`` (space separated) and
  ``jobtoken-expires-at`` (RFC 3339): AWS tags, GCP annotations, Key Vault tags
  (Key Vault's own ``attributes.exp`` also counts as the expiry), Vault KV v2
  ``custom_metadata``.

A document's own fields win over the metadata; a field missing from both is
unknown (``None``), and the exchange's checks decide what unknown means
(deny, except for an expiry when the user set ``allow-no-expiry``).

Everything here is bounded and strict: text that looks like JSON but is not a
valid document is an error, never a token.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from jobtoken.action.errors import ProviderError
from jobtoken.action.provider import IssuedToken
from jobtoken.wire.grammar import parse_ascii_int, split_scopes
from jobtoken.wire.strict_json import DuplicateKeyError, loads_strict

__all__ = [
    "EXPIRES_AT_KEY",
    "SCOPES_KEY",
    "ConnectorSecret",
    "SecretMetadata",
    "metadata_from_mapping",
    "parse_expiry",
    "parse_scopes",
    "read_connector_fields",
    "read_connector_secret",
    "to_issued_token",
]

#: metadata keys (tags, annotations, custom metadata) for a plain-string secret
SCOPES_KEY = "jobtoken-scopes"
EXPIRES_AT_KEY = "jobtoken-expires-at"

MAX_SECRET_CHARS = 64 * 1024
MAX_TOKEN_CHARS = 16 * 1024
MAX_SCOPES = 64
MAX_SCOPE_CHARS = 256
DOCUMENT_KEYS = frozenset({"token", "scopes", "expires_at"})

# RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]+")
# [0-9], never \d: in a str pattern \d is any script's digit
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# seconds since the epoch in this range: 2001-09-09 .. 2286-11-20
_EPOCH_RANGE = (1_000_000_000, 9_999_999_999)


@dataclass(frozen=True)
class SecretMetadata:
    """Scopes and expiry a secret manager keeps beside the value (raw, untrusted)."""

    #: where they came from, for messages, e.g. "the secret's tags"
    where: str
    scopes: str | None = None
    expires_at: str | int | None = None


@dataclass(frozen=True)
class ConnectorSecret:
    """A connector token with what is known about it."""

    token: str = field(repr=False)
    #: None when neither the document nor the metadata says
    scopes: tuple[str, ...] | None
    #: None when neither the document nor the metadata says
    expires_at: datetime.datetime | None


def read_connector_secret(
    value: str, *, what: str, metadata: SecretMetadata | None = None
) -> ConnectorSecret:
    """The connector secret in ``value`` (the secret's text), ``what`` naming it in errors."""
    if len(value) > MAX_SECRET_CHARS:
        raise ProviderError(f"{what} is larger than {MAX_SECRET_CHARS} characters")
    text = value.strip()
    if text.startswith("{"):
        return _from_document(text, what=what, metadata=metadata)
    token = _token(text, what=what)
    scopes = None
    expires_at = None
    if metadata is not None:
        if metadata.scopes is not None:
            scopes = parse_scopes(metadata.scopes, what=f"`{SCOPES_KEY}` in {metadata.where}")
        if metadata.expires_at is not None:
            expires_at = parse_expiry(
                metadata.expires_at, what=f"`{EXPIRES_AT_KEY}` in {metadata.where}"
            )
    return ConnectorSecret(token=token, scopes=scopes, expires_at=expires_at)


def parse_scopes(value: object, *, what: str) -> tuple[str, ...]:
    """Scopes from a list of strings or one space-separated string."""
    if isinstance(value, str):
        items: list[object] = list(split_scopes(value))
    elif isinstance(value, list):
        items = list(value)
    else:
        raise ProviderError(f"{what} must be a list of scopes or a space-separated string")
    if len(items) > MAX_SCOPES:
        raise ProviderError(f"{what} lists more than {MAX_SCOPES} scopes")
    scopes: list[str] = []
    for item in items:
        if (
            not isinstance(item, str)
            or len(item) > MAX_SCOPE_CHARS
            or not _SCOPE_TOKEN.fullmatch(item)
        ):
            raise ProviderError(
                f"{what} holds a scope that is not an RFC 6749 scope token "
                "(printable ASCII without spaces, quotes or backslashes)"
            )
        scopes.append(item)
    return tuple(scopes)


def parse_expiry(value: object, *, what: str) -> datetime.datetime:
    """An expiry from an RFC 3339 time or a whole number of seconds since the epoch."""
    if isinstance(value, bool):
        raise ProviderError(f"{what} must be an RFC 3339 time (e.g. 2026-01-31T12:00:00Z)")
    quoted_seconds = parse_ascii_int(value, 10) if isinstance(value, str) else None
    if isinstance(value, int):
        seconds = value
    elif quoted_seconds is not None:
        seconds = quoted_seconds
    elif isinstance(value, str) and len(value) <= 40 and _RFC3339.fullmatch(value):
        text = value.upper().replace("Z", "+00:00")
        base, _, rest = text.partition(".")
        if rest:  # fromisoformat on 3.10 takes 3 or 6 fraction digits only
            digits = rest[: -len("+00:00")]
            text = f"{base}.{digits[:6].ljust(6, '0')}{rest[-len('+00:00') :]}"
        try:
            return datetime.datetime.fromisoformat(text).astimezone(datetime.timezone.utc)
        except ValueError:
            raise ProviderError(f"{what} is not a valid RFC 3339 time") from None
    else:
        raise ProviderError(
            f"{what} must be an RFC 3339 time (e.g. 2026-01-31T12:00:00Z) "
            "or seconds since the epoch"
        )
    if not _EPOCH_RANGE[0] <= seconds <= _EPOCH_RANGE[1]:
        raise ProviderError(f"{what} is not a plausible time in seconds since the epoch")
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


def metadata_from_mapping(
    values: Mapping[str, object], *, where: str, expires_at: str | int | None = None
) -> SecretMetadata:
    """``SecretMetadata`` from tags/annotations; ``expires_at`` is the manager's own expiry."""
    scopes = values.get(SCOPES_KEY)
    tagged_expiry = values.get(EXPIRES_AT_KEY)
    if scopes is not None and not isinstance(scopes, str):
        raise ProviderError(f"`{SCOPES_KEY}` in {where} must be a string")
    if tagged_expiry is not None and not isinstance(tagged_expiry, str):
        raise ProviderError(f"`{EXPIRES_AT_KEY}` in {where} must be a string")
    return SecretMetadata(
        where=where, scopes=scopes, expires_at=tagged_expiry if tagged_expiry else expires_at
    )


def read_connector_fields(
    fields: Mapping[str, object],
    *,
    what: str,
    metadata: SecretMetadata | None = None,
    also_allowed: frozenset[str] = frozenset(),
) -> ConnectorSecret:
    """The connector secret in an already parsed document (e.g. a Vault secret's data).

    Keys other than token, scopes, expires_at (and ``also_allowed``) are refused: an
    unknown key is most often a misspelt one (``expires`` for ``expires_at``).
    """
    unknown = sorted(set(fields) - DOCUMENT_KEYS - also_allowed)
    if unknown:
        names = ", ".join(repr(name)[:40] for name in unknown[:5])
        raise ProviderError(
            f"{what} has keys jobtoken does not know ({names}); allowed: token, scopes, expires_at"
        )
    raw_token = fields.get("token")
    if not isinstance(raw_token, str):
        raise ProviderError(f'{what} is a JSON document without a string "token"')
    token = _token(raw_token, what=what)
    fallback = metadata or SecretMetadata(where="")
    scopes: tuple[str, ...] | None = None
    if "scopes" in fields:
        scopes = parse_scopes(fields["scopes"], what=f'"scopes" of {what}')
    elif fallback.scopes is not None:
        scopes = parse_scopes(fallback.scopes, what=f"`{SCOPES_KEY}` in {fallback.where}")
    expires_at: datetime.datetime | None = None
    if "expires_at" in fields:
        expires_at = parse_expiry(fields["expires_at"], what=f'"expires_at" of {what}')
    elif fallback.expires_at is not None:
        expires_at = parse_expiry(
            fallback.expires_at, what=f"`{EXPIRES_AT_KEY}` in {fallback.where}"
        )
    return ConnectorSecret(token=token, scopes=scopes, expires_at=expires_at)


def to_issued_token(
    secret: ConnectorSecret,
    *,
    provider: str,
    what: str,
    other_expiries: Iterable[datetime.datetime] = (),
    extra_secrets: tuple[str, ...] = (),
    revoke_state: Mapping[str, str] | None = None,
    now: datetime.datetime | None = None,
) -> IssuedToken:
    """The `IssuedToken` the exchange checks, from a connector secret.

    Unknown scopes fail closed here: for the action, ``scopes=None`` would mean
    "exactly what was requested", which a secret manager cannot promise. The
    expiry is the soonest of the secret's own and ``other_expiries`` (a lease, a
    Key Vault ``exp``); none known gives ``expires_in=None`` (no expiry), which the
    checks refuse unless the user set ``allow-no-expiry: true``.
    """
    if secret.scopes is None:
        raise ProviderError(
            f"{what} does not say which scopes its token has: store a JSON document "
            f'{{"token": …, "scopes": [...], "expires_at": …}} or set the `{SCOPES_KEY}` '
            "metadata (tag, annotation, custom metadata) to the space-separated scopes"
        )
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    expiries = [e for e in (secret.expires_at, *other_expiries) if e is not None]
    expires_in = None
    if expiries:
        expires_in = int((min(expiries) - moment).total_seconds())
    digest = hashlib.sha256(secret.token.encode()).hexdigest()[:16]
    return IssuedToken(
        access_token=secret.token,
        token_type="Bearer",  # noqa: S106 - a token type, not a secret
        expires_in=expires_in,
        scopes=secret.scopes,
        token_id=f"{provider}:{digest}",
        extra_secrets=extra_secrets,
        revoke_state=dict(revoke_state or {}),
    )


# --- internals -------------------------------------------------------------------------------


def _from_document(text: str, *, what: str, metadata: SecretMetadata | None) -> ConnectorSecret:
    try:
        document = loads_strict(text.encode("utf-8", "surrogatepass"))
    except DuplicateKeyError:
        raise ProviderError(
            f"{what} is a JSON document that repeats a key: store each field once"
        ) from None
    except ValueError:
        raise ProviderError(
            f"{what} starts with `{{` but is not valid JSON: store either a JSON document "
            '{"token": …, "scopes": […], "expires_at": …} or the bare token'
        ) from None
    if not isinstance(document, dict):
        raise ProviderError(f"{what} is JSON but not an object")
    return read_connector_fields(document, what=what, metadata=metadata)


def _token(text: str, *, what: str) -> str:
    if not text:
        raise ProviderError(f"{what} holds an empty token")
    if len(text) > MAX_TOKEN_CHARS:
        raise ProviderError(f"the token in {what} is longer than {MAX_TOKEN_CHARS} characters")
    if not _TOKEN_TEXT.fullmatch(text):
        raise ProviderError(
            f"the token in {what} contains spaces, line breaks, control or non-ASCII "
            "characters; a connector token is printable ASCII"
        )
    return text
