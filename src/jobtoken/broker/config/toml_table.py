"""The strict TOML table reader the config loader is built on.

:class:`Table` is :class:`~jobtoken.broker.ops.strict_toml.StrictTable` (key by key,
type and range checked, unknown keys refused by name) plus what only the config file
has: paths relative to the config file, and secret references (``<name>_file`` /
``<name>_env``). A key nobody asked for that looks like an inline secret is refused
saying so plainly. :func:`checked` builds a value from a table and refuses its unknown
keys, naming the table in any error. Errors are :class:`ValueError`; ``load_config``
turns them into ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobtoken.broker.config.secret_ref import SecretRef
from jobtoken.broker.ops.strict_toml import StrictTable, checked

__all__ = ["Table", "checked"]

_INLINE_SECRET_WORDS = ("secret", "password", "token", "master_key", "credential", "dsn")


#: a connector's sub-tables read only for some credentials, and which
_CREDENTIAL_TABLES = {
    "oauth": '"oauth2-refresh" or "oauth2-client-credentials"',
    "github_app": '"github-app"',
}


class Table(StrictTable):
    """One table of the config file; paths in it are relative to ``base``."""

    def __init__(self, data: Mapping[str, Any], where: str, base: Path) -> None:
        super().__init__(data, where)
        self._base = base

    def _child(self, data: Mapping[str, Any], where: str) -> Table:
        return Table(data, where, self._base)

    def path(self, key: str, default: Path | None) -> Path | None:
        value = self._get(key, str, "a path")
        if value is None:
            return default if default is None else self.resolve(str(default))
        return self.resolve(value)

    def resolve(self, value: str) -> Path:
        return self._base / Path(value).expanduser()

    def secret(self, name: str, what: str) -> SecretRef | None:
        file = self.path(f"{name}_file", None)
        env = self._get(f"{name}_env", str, "an environment variable name")
        if file is not None and env is not None:
            raise ValueError(f"[{self.where}] set {name}_file or {name}_env, not both")
        if file is None and env is None:
            return None
        return SecretRef(what=what, file=file, env=env)

    def refusal(self, key: str) -> str:
        if any(word in key.lower() for word in _INLINE_SECRET_WORDS):
            return (
                f"[{self.where}] {key}: secrets are never written in the config file; "
                "use <name>_file or <name>_env (see examples/broker/broker.toml)"
            )
        refusal = super().refusal(key)
        owner, _, connector = self.where.partition(".")
        if owner == "connectors" and connector and "." not in connector and self.is_table(key):
            if key in _CREDENTIAL_TABLES:  # read only for its kind of credential
                refusal += f"; it is read only with credential = {_CREDENTIAL_TABLES[key]}"
            elif "did you mean" not in refusal:  # [connectors.my.api]: a dotted name
                refusal += (
                    f"; a connector name cannot contain '.': for a connector named "
                    f"{connector}.{key}, write [connectors.{connector}-{key}]"
                )
        return refusal
