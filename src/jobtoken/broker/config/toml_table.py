"""The strict TOML table reader the config loader is built on.

:class:`Table` reads one TOML table key by key, checking each value's type and
range; :meth:`Table.done` then refuses every key nobody asked for, and says so
plainly when the key looks like an inline secret. :func:`checked` builds a value
from a table and refuses its unknown keys, naming the table in any error.
Errors are :class:`ValueError`; ``load_config`` turns them into ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from jobtoken.broker.config.secret_ref import SecretRef

__all__ = ["Table", "checked"]

_T = TypeVar("_T")

_INLINE_SECRET_WORDS = ("secret", "password", "token", "master_key", "credential", "dsn")


class Table:
    """One TOML table, read key by key; :meth:`done` refuses keys nobody asked for."""

    def __init__(self, data: Mapping[str, Any], where: str, base: Path) -> None:
        self._data, self.where, self._base = data, where, base
        self._seen: set[str] = set()

    def _get(self, key: str, kind: type | tuple[type, ...], label: str) -> Any:
        self._seen.add(key)
        value = self._data.get(key)
        if value is not None and (
            not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
        ):
            raise ValueError(f"[{self.where}] {key} must be {label}")
        return value

    def text(self, key: str, default: str) -> str:
        value = self._get(key, str, "a string")
        return default if value is None else str(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in choices:
            raise ValueError(f"[{self.where}] {key} must be one of {', '.join(choices)}")
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._get(key, int, "an integer")
        value = default if value is None else value
        if not low <= value <= high:
            raise ValueError(f"[{self.where}] {key} must be between {low} and {high}")
        return int(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, bool, "true or false")
        return default if value is None else bool(value)

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(key, list, "a list of strings")
        if value is None:
            return default
        if not all(isinstance(v, str) for v in value):
            raise ValueError(f"[{self.where}] {key} must be a list of strings")
        return tuple(value)

    def path(self, key: str, default: Path | None) -> Path | None:
        value = self._get(key, str, "a path")
        if value is None:
            return default if default is None else self.resolve(str(default))
        return self.resolve(value)

    def resolve(self, value: str) -> Path:
        return self._base / Path(value).expanduser()

    def names(self) -> list[str]:
        self._seen.update(self._data)
        return list(self._data)

    def table(self, key: str) -> Table:
        value = self._get(key, dict, "a table")
        return Table(value or {}, f"{self.where}.{key}" if self.where else key, self._base)

    def tables(self, key: str) -> list[Table]:
        value = self._get(key, list, "an array of tables")
        out = []
        for i, item in enumerate(value or []):
            if not isinstance(item, dict):
                raise ValueError(f"[{self.where}] {key} entries must be tables")
            out.append(Table(item, f"{self.where}.{key}[{i}]", self._base))
        return out

    def secret(self, name: str, what: str) -> SecretRef | None:
        file = self.path(f"{name}_file", None)
        env = self._get(f"{name}_env", str, "an environment variable name")
        if file is not None and env is not None:
            raise ValueError(f"[{self.where}] set {name}_file or {name}_env, not both")
        if file is None and env is None:
            return None
        return SecretRef(what=what, file=file, env=env)

    def done(self) -> None:
        for key in self._data:
            if key in self._seen:
                continue
            if any(word in key.lower() for word in _INLINE_SECRET_WORDS):
                raise ValueError(
                    f"[{self.where}] {key}: secrets are never written in the config file; "
                    "use <name>_file or <name>_env (see examples/broker/broker.toml)"
                )
            raise ValueError(f"[{self.where}] unknown key {key!r}")


def checked(table: Table, build: Callable[[Table], _T]) -> _T:
    """Build a value from ``table``, then refuse its unknown keys; errors name the table."""
    try:
        value = build(table)
    except ValueError as exc:
        message = str(exc)
        raise ValueError(
            message if message.startswith("[") else f"[{table.where}] {message}"
        ) from None
    table.done()
    return value
