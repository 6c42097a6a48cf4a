"""Secret references: where the config file says a secret lives, and reading it from there.

Secrets never appear in the config file; it names a file (``<name>_file``) or an
environment variable (``<name>_env``) instead. :class:`SecretRef` is that name, and
:meth:`SecretRef.read` fetches the value when the broker needs it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from jobtoken.broker.config.errors import ConfigError

__all__ = ["MAX_SECRET_BYTES", "SecretRef"]

MAX_SECRET_BYTES = 64 * 1024


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: a file or an environment variable, never the config text."""

    what: str
    file: Path | None = None
    env: str | None = None

    def read(self) -> str:
        if self.file is not None:
            try:
                data = self.file.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read {self.what} from {self.file}: {exc.strerror}"
                ) from None
            if len(data) > MAX_SECRET_BYTES:
                raise ConfigError(f"{self.what} file {self.file} is larger than 64 KiB")
            try:
                value = data.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise ConfigError(f"{self.what} file {self.file} is not UTF-8") from None
        else:
            assert self.env is not None
            value = os.environ.get(self.env, "").strip()
        if not value:
            where = self.file if self.file is not None else f"environment variable {self.env}"
            raise ConfigError(f"{self.what} is empty or missing ({where})")
        return value
