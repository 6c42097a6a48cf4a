"""Where repository policies come from: trusted places only, never the job's checkout.

``PolicySource`` is what ``evaluate`` reads from:

- ``policy_for(repository, repository_id)`` returns the repository's
  ``RepositoryPolicy``, ``None`` when it has none (deny), raises
  ``PolicyError`` when the file is invalid and ``PolicySourceError`` when the
  source cannot answer (both deny). The caller still checks that the policy
  names the same repository and repository_id.
- ``where(repository)`` says, for an error message, where that policy lives.

Sources here: ``DirectoryPolicySource(path)`` — files in a directory on the
broker, kept in git by the platform team (GitOps), one per repository at
``<path>/<owner>/<name>.yml`` (lower case; :func:`directory_contents` says which files
it reads and which it ignores, and why); and, in the broker's GitHub contents-API source,
``GitHubPolicySource`` — the repository's default branch through the GitHub
contents API (needs ``requests``).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from jobtoken.policy.errors import PolicySourceError
from jobtoken.policy.schema import RepositoryPolicy, load_repository_policy
from jobtoken.policy.strict_yaml import MAX_POLICY_BYTES

__all__ = [
    "DirectoryPolicySource",
    "PolicyDirectory",
    "PolicySource",
    "directory_contents",
    "repository_parts",
]

_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}")
_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


class PolicySource(Protocol):
    def policy_for(self, repository: str, repository_id: str) -> RepositoryPolicy | None: ...

    def where(self, repository: str) -> str: ...


def repository_parts(repository: str) -> tuple[str, str]:
    """``owner/name`` split and checked, so that it is safe in a path or a URL."""
    owner, _, name = repository.partition("/")
    if not _OWNER.fullmatch(owner) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise PolicySourceError("the token's repository claim is not owner/name")
    return owner, name


class DirectoryPolicySource:
    """Policies in ``<path>/<owner>/<name>.yml``; files are re-read when they change."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[tuple[int, int], RepositoryPolicy]] = {}

    def where(self, repository: str) -> str:
        return "the broker's policy directory"

    def file_for(self, repository: str) -> Path:
        owner, name = repository_parts(repository)
        return self.path / owner.lower() / f"{name.lower()}.yml"

    def policy_for(self, repository: str, repository_id: str) -> RepositoryPolicy | None:
        path = self.file_for(repository)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        except OSError:
            raise PolicySourceError("the broker's policy directory cannot be read") from None
        version = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_POLICY_BYTES + 1)
        except OSError:
            raise PolicySourceError("the broker's policy directory cannot be read") from None
        policy = load_repository_policy(data, os.path.join(path.parent.name, path.name))
        with self._lock:
            self._cache[path] = (version, policy)
        return policy


#: most files of a policy directory listed (read or ignored)
MAX_DIRECTORY_FILES = 10_000


@dataclass(frozen=True)
class PolicyDirectory:
    """What :class:`DirectoryPolicySource` does with each policy-like file of a directory.

    ``read`` maps each file it reads to the repository (``owner/name``, lower case)
    it reads it for; ``ignored`` maps each ``.yml``/``.yaml`` file it never reads to
    why, with the path that would be read.
    """

    read: dict[Path, str] = field(default_factory=dict)
    ignored: dict[Path, str] = field(default_factory=dict)


def directory_contents(path: Path, *, besides: tuple[Path, ...] = ()) -> PolicyDirectory:
    """Which files under ``path`` the directory source reads, and which it ignores and why.

    ``besides`` are files read for another purpose (the organization file), not
    reported as ignored. Never raises for a directory that cannot be listed: it is empty.
    """
    contents = PolicyDirectory()
    skip = {p.resolve() for p in besides}
    try:
        found = sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())[
            :MAX_DIRECTORY_FILES
        ]
    except OSError:
        return contents
    for file in found:
        if file.resolve() in skip:
            continue
        why = _why_ignored(file.relative_to(path))
        if why is None:
            contents.read[file] = f"{file.parent.name}/{file.stem}"
        else:
            contents.ignored[file] = why
    return contents


def _why_ignored(relative: Path) -> str | None:
    """Why the directory source never reads ``relative`` (None when it does)."""
    parts = relative.parts
    if len(parts) != 2:
        return "it is not at <owner>/<name>.yml (one directory deep): no repository's path"
    owner, name = parts[0], relative.stem
    if not _OWNER.fullmatch(owner) or not _NAME.fullmatch(name) or name in (".", ".."):
        return f"{owner}/{name} is not a repository's owner/name"
    wanted = f"{owner.lower()}/{name.lower()}.yml"
    if relative.suffix != ".yml":
        return f"the broker reads only .yml files: rename it to {wanted}"
    if relative.as_posix() != wanted:
        return f"the broker reads only lower-case paths: rename it to {wanted}"
    return None
