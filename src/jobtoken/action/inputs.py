"""The action's inputs, validated before any network call.

Inputs reach Python only through the environment: action.yml passes each
input `name-with-dashes` as `INPUT_NAME_WITH_DASHES` in the step's `env:`.

Public API:

- `InputReader(env)` — typed, bounded reads of one input each (`text`, `url`,
  `duration`, `boolean`, `scopes`); every failure is an `InputError` that names
  the input and says what is allowed. Providers read their own inputs with it.
- `ExchangeInputs` / `read_exchange_inputs(reader)` — the exchange action's
  common inputs.
- `RevokeInputs` / `read_revoke_inputs(reader)` — the revoke action's inputs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from jobtoken.action.errors import InputError
from jobtoken.action.http.client import check_url
from jobtoken.wire.grammar import (
    CONNECTOR_NAME,
    CONNECTOR_NAME_RULE,
    MAX_SCOPES,
    SCOPE,
    SCOPE_RULE,
    TOKEN_ID,
    format_duration,
    parse_duration,
    split_scopes,
)

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs ≈5 ms per run
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "ExchangeInputs",
    "InputReader",
    "RevokeInputs",
    "read_exchange_inputs",
    "read_revoke_inputs",
]

MAX_ALLOWED_SCOPES = 256
MAX_INPUT_LENGTH = 4096
_TRIMMED = " \t\r\n"

AUDIENCE = re.compile(r"^[\x21-\x7e]{1,256}\Z")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")

#: environment variables `export-env` must never overwrite: they change how
#: later steps (or the runner) execute code, or they are the runner's own
FORBIDDEN_ENV_PREFIXES = ("GITHUB_", "RUNNER_", "ACTIONS_", "INPUT_", "LD_", "DYLD_", "PYTHON")
FORBIDDEN_ENV_NAMES = frozenset(
    {"PATH", "HOME", "SHELL", "BASH_ENV", "ENV", "NODE_OPTIONS", "PERL5OPT", "RUBYOPT", "CI"}
)


class InputReader:
    """Reads `INPUT_*` variables; each method validates one input or raises `InputError`."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def raw(self, name: str) -> str:
        # ASCII whitespace only: `str.strip()` would also drop \x1c-\x1f and Unicode
        # spaces, and a value that is nothing but those would read as empty
        value = self.env.get("INPUT_" + name.upper().replace("-", "_"), "").strip(_TRIMMED)
        if len(value) > MAX_INPUT_LENGTH:
            raise InputError(name, f"is longer than {MAX_INPUT_LENGTH} characters")
        return value

    def text(
        self, name: str, *, pattern: re.Pattern[str], allowed: str, required: bool = False
    ) -> str | None:
        """The input if it matches `pattern`; `allowed` says in words what matches."""
        value = self.raw(name)
        if not value:
            if required:
                raise InputError(name, f"is required ({allowed})")
            return None
        if not pattern.match(value):
            raise InputError(name, f"is not allowed: use {allowed}")
        return value

    def url(self, name: str, *, required: bool = False) -> str | None:
        """An https:// URL (http:// only for loopback hosts), without trailing slash."""
        value = self.raw(name)
        if not value:
            if required:
                raise InputError(name, "is required: an https:// URL")
            return None
        try:
            check_url(value)
        except ValueError as exc:
            raise InputError(name, str(exc)) from None
        return value.rstrip("/")

    def duration(self, name: str, *, default: str, minimum: int, maximum: int) -> int:
        """Seconds of a duration like `90s`, `15m`, `1h`, within [minimum, maximum]."""
        seconds = self.optional_duration(name, minimum=minimum, maximum=maximum, default=default)
        assert seconds is not None
        return seconds

    def optional_duration(
        self, name: str, *, minimum: int, maximum: int, default: str | None = None
    ) -> int | None:
        """Like `duration`; None when the input is empty and there is no default."""
        text = self.raw(name) or default
        if text is None:
            return None
        bounds = f"between {format_duration(minimum)} and {format_duration(maximum)}"
        seconds = parse_duration(text)
        if seconds is None:
            raise InputError(
                name,
                f"is not a duration: use seconds, or h, m and s as in 90s, 15m or 1h30m ({bounds})",
            )
        if not minimum <= seconds <= maximum:
            raise InputError(name, f"must be {bounds}")
        return seconds

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self.raw(name).lower()
        if not value:
            return default
        if value not in ("true", "false"):
            raise InputError(name, "must be true or false")
        return value == "true"

    def scopes(self, name: str, *, limit: int) -> tuple[str, ...]:
        """Space-separated scopes: RFC 6749 characters, no duplicates, at most `limit`."""
        scopes = split_scopes(self.raw(name))
        if len(scopes) > limit:
            raise InputError(name, f"has {len(scopes)} scopes; at most {limit} are allowed")
        for scope in scopes:
            if not SCOPE.match(scope):
                raise InputError(
                    name,
                    f"has a scope with a character that is not allowed: a scope is {SCOPE_RULE}",
                )
        if len(set(scopes)) != len(scopes):
            duplicate = next(s for s in scopes if scopes.count(s) > 1)
            raise InputError(name, f"lists the scope {duplicate} more than once")
        return scopes


class ExchangeInputs:
    """The exchange action's common inputs (immutable; provider-specific ones: see providers)."""

    __slots__ = (
        "allow_no_expiry",
        "allowed_scopes",
        "audience",
        "broker_url",
        "connector",
        "export_env",
        "max_ttl",
        "min_remaining",
        "provider",
        "scopes",
        "summary",
        "timeout",
        "ttl",
    )

    def __init__(
        self,
        provider: str,
        connector: str | None,
        scopes: tuple[str, ...],
        ttl: int,
        max_ttl: int | None,
        min_remaining: int,
        audience: str | None,
        broker_url: str | None,
        allowed_scopes: frozenset[str] | None,
        allow_no_expiry: bool,
        timeout: int,
        summary: bool,
        export_env: str | None,
    ) -> None:
        self.provider: Final = provider
        self.connector: Final = connector
        self.scopes: Final = scopes
        #: seconds
        self.ttl: Final = ttl
        self.max_ttl: Final = max_ttl
        self.min_remaining: Final = min_remaining
        #: None: the provider's default (the broker URL for `broker`)
        self.audience: Final = audience
        self.broker_url: Final = broker_url
        #: None: no admin guard rail given
        self.allowed_scopes: Final = allowed_scopes
        self.allow_no_expiry: Final = allow_no_expiry
        #: seconds for the whole action
        self.timeout: Final = timeout
        self.summary: Final = summary
        self.export_env: Final = export_env

    @property
    def lifetime_cap(self) -> int:
        """The longest lifetime the issued token may have: min(ttl, max-ttl)."""
        return min(self.ttl, self.max_ttl) if self.max_ttl is not None else self.ttl


def read_provider_name(reader: InputReader) -> str:
    name = reader.raw("provider") or "broker"
    if not re.match(r"^[a-z0-9-]{1,40}\Z", name):
        raise InputError("provider", "is not a provider name (e.g. broker, vault)")
    return name


def read_timeout(reader: InputReader) -> int:
    return reader.duration("timeout", default="30s", minimum=1, maximum=600)


def read_exchange_inputs(reader: InputReader) -> ExchangeInputs:
    """Every common input of the exchange action, validated; raises `InputError`."""
    provider = read_provider_name(reader)
    connector = reader.text(
        "connector",
        pattern=CONNECTOR_NAME,
        allowed=f"a connector name: {CONNECTOR_NAME_RULE} (e.g. hubspot)",
        required=provider == "broker",
    )
    scopes = reader.scopes("scopes", limit=MAX_SCOPES)
    ttl = reader.duration("ttl", default="15m", minimum=60, maximum=12 * 3600)
    max_ttl = reader.optional_duration("max-ttl", minimum=60, maximum=24 * 3600)
    min_remaining = reader.duration("min-remaining", default="30s", minimum=0, maximum=12 * 3600)
    if max_ttl is not None and ttl > max_ttl:
        raise InputError("ttl", f"is longer than max-ttl ({format_duration(max_ttl)})")
    cap = min(ttl, max_ttl) if max_ttl is not None else ttl
    if min_remaining >= cap:
        raise InputError(
            "min-remaining", f"must be shorter than the token's lifetime ({format_duration(cap)})"
        )
    allowed: frozenset[str] | None = None
    if reader.raw("allowed-scopes"):
        allowed = frozenset(reader.scopes("allowed-scopes", limit=MAX_ALLOWED_SCOPES))
        outside = [s for s in scopes if s not in allowed]
        if outside:
            raise InputError(
                "scopes", f"asks for {' '.join(outside)}, which allowed-scopes does not allow"
            )
    broker_url = reader.url("broker-url", required=provider == "broker")
    audience = reader.text(
        "audience", pattern=AUDIENCE, allowed="1 to 256 printable characters without spaces"
    )
    export_env = reader.text(
        "export-env",
        pattern=ENV_NAME,
        allowed="an environment variable name: letters, digits and _ (e.g. HUBSPOT_TOKEN)",
    )
    if export_env is not None and (
        export_env.upper() in FORBIDDEN_ENV_NAMES
        or export_env.upper().startswith(FORBIDDEN_ENV_PREFIXES)
    ):
        raise InputError("export-env", f"{export_env} is reserved: choose another name")
    return ExchangeInputs(
        provider=provider,
        connector=connector,
        scopes=scopes,
        ttl=ttl,
        max_ttl=max_ttl,
        min_remaining=min_remaining,
        audience=audience,
        broker_url=broker_url,
        allowed_scopes=allowed,
        allow_no_expiry=reader.boolean("allow-no-expiry", default=False),
        timeout=read_timeout(reader),
        summary=reader.boolean("summary", default=True),
        export_env=export_env,
    )


class RevokeInputs:
    """The revoke action's inputs (immutable).

    All of token, token_id and revoke_handle are None when the exchange
    step wrote no output (it failed): there is then nothing to revoke."""

    __slots__ = (
        "audience",
        "broker_url",
        "fail_on_error",
        "provider",
        "revoke_handle",
        "timeout",
        "token",
        "token_id",
    )

    def __init__(
        self,
        provider: str,
        token: str | None,
        token_id: str | None,
        revoke_handle: str | None,
        broker_url: str | None,
        audience: str | None,
        fail_on_error: bool,
        timeout: int,
    ) -> None:
        self.provider: Final = provider
        self.token: Final = token
        self.token_id: Final = token_id
        self.revoke_handle: Final = revoke_handle
        self.broker_url: Final = broker_url
        self.audience: Final = audience
        self.fail_on_error: Final = fail_on_error
        self.timeout: Final = timeout


def read_revoke_inputs(reader: InputReader) -> RevokeInputs:
    """Every input of the revoke action, validated; raises `InputError`."""
    provider = read_provider_name(reader)
    token = reader.raw("token") or None
    token_id = reader.text(
        "token-id", pattern=TOKEN_ID, allowed="the token-id output of the exchange step"
    )
    handle = reader.raw("revoke-handle") or None
    return RevokeInputs(
        provider=provider,
        token=token,
        token_id=token_id,
        revoke_handle=handle,
        broker_url=reader.url("broker-url", required=provider == "broker"),
        audience=reader.text(
            "audience", pattern=AUDIENCE, allowed="1 to 256 printable characters without spaces"
        ),
        fail_on_error=reader.boolean("fail-on-error", default=False),
        timeout=read_timeout(reader),
    )
