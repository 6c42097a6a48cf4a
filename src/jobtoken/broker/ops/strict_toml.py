"""A strict reader of TOML tables, for every file the broker reads: its config
(``config/toml_table.py`` adds secret references and paths) and its provider catalogue
(``connectors/templates.toml``).

:class:`StrictTable` reads one table key by key, checking each value's type and range;
:meth:`StrictTable.done` then refuses every key nobody asked for, naming it, so a typo
never silently falls back to a default. :func:`checked` builds a value from a table and
refuses its unknown keys, naming the table in any error; an unknown key or table is
named with the closest one the table knows ("did you mean"). Errors are :class:`ValueError`.
``tomllib`` is the standard library's on Python 3.11+, the ``tomli`` backport on 3.10.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["StrictTable", "checked", "tomllib"]

_T = TypeVar("_T")
_Table = TypeVar("_Table", bound="StrictTable")


class StrictTable:
    """One TOML table, read key by key; :meth:`done` refuses keys nobody asked for."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self._data, self.where = data, where
        self._seen: set[str] = set()

    def _get(self, key: str, kind: type | tuple[type, ...], label: str) -> Any:
        self._seen.add(key)
        value = self._data.get(key)
        if value is not None and (
            not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
        ):
            raise ValueError(f"[{self.where}] {key} must be {label}")
        return value

    def _child(self: _Table, data: Mapping[str, Any], where: str) -> _Table:
        """A table inside this one, read the same way (a subclass keeps its own state)."""
        return type(self)(data, where)

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

    def names(self) -> list[str]:
        """Every key, each then counting as read."""
        self._seen.update(self._data)
        return list(self._data)

    def given(self) -> list[str]:
        """Every key the table sets, reading none of them."""
        return list(self._data)

    def table(self: _Table, key: str) -> _Table:
        value = self._get(key, dict, "a table")
        return self._child(value or {}, f"{self.where}.{key}" if self.where else key)

    def tables(self: _Table, key: str) -> list[_Table]:
        value = self._get(key, list, "an array of tables")
        out = []
        for i, item in enumerate(value or []):
            if not isinstance(item, dict):
                raise ValueError(f"[{self.where}] {key} entries must be tables")
            out.append(self._child(item, f"{self.where}.{key}[{i}]"))
        return out

    def is_table(self, key: str) -> bool:
        """Whether ``key`` holds a table (``[where.key]`` in the file)."""
        return isinstance(self._data.get(key), dict)

    def refusal(self, key: str) -> str:
        """What :meth:`done` says of ``key``, a key nobody asked for: a key, or a table
        (``[where.key]``), and the closest key this table knows, if one is close."""
        close = difflib.get_close_matches(key, sorted(self._seen - {key}), n=1)
        if self.is_table(key):
            prefix = f"{self.where}." if self.where else ""
            what = f"unknown table [{prefix}{key}]"
            what += f"; did you mean [{prefix}{close[0]}]?" if close else ""
        else:
            what = f"unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else "")
        return f"[{self.where}] {what}" if self.where else what

    def done(self) -> None:
        for key in self._data:
            if key not in self._seen:
                raise ValueError(self.refusal(key))


def checked(table: _Table, build: Callable[[_Table], _T]) -> _T:
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
