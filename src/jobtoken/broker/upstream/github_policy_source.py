"""Repository policies read from the default branch through the GitHub contents API.

``GitHubPolicySource(api_url, token, path_in_repo=".github/jobtoken.yml",
cache_ttl=300, timeout=5)`` implements ``PolicySource``:

- ``GET {api_url}/repos/{owner}/{name}/contents/{path_in_repo}`` without a
  ``ref`` — GitHub answers from the default branch, which the repository's
  admins protect; a job's own checkout or branch is never read. Headers:
  ``Accept: application/vnd.github.raw+json``, ``X-GitHub-Api-Version``, and
  ``Authorization: Bearer <token>`` (a GitHub App installation token or a
  fine-grained token with *contents: read*; it never appears in an error).
- 200 → the file (at most 64 KiB, read as a stream) is parsed;
  404 → ``None`` (no policy: deny); anything else — 3xx (no redirects are
  followed), 401, 403 (including rate limits), 5xx, a timeout, a connection
  error, an oversized body — raises ``PolicySourceError`` (deny).
- Answers (a policy, no policy, or an invalid file) are cached per
  repository and repository_id for ``cache_ttl`` seconds, at most
  ``max_entries`` of them; failures are not cached.
- ``api_url`` is ``https://api.github.com`` or ``https://HOST/api/v3`` (GHES);
  plain http is accepted only for 127.0.0.1 / localhost (tests).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import quote, urlsplit

import requests

from jobtoken.broker.upstream.bounded_http import BoundedHttpError, request_bounded
from jobtoken.policy.errors import PolicyError, PolicySourceError
from jobtoken.policy.schema import RepositoryPolicy, load_repository_policy
from jobtoken.policy.sources import repository_parts
from jobtoken.policy.strict_yaml import MAX_POLICY_BYTES

__all__ = ["DEFAULT_POLICY_PATH", "GitHubPolicySource"]

DEFAULT_POLICY_PATH = ".github/jobtoken.yml"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

_Answer = RepositoryPolicy | PolicyError | None


class GitHubPolicySource:
    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        path_in_repo: str = DEFAULT_POLICY_PATH,
        cache_ttl: float = 300.0,
        timeout: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(api_url)
        secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
        if not secure or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("api_url must be an https URL such as https://api.github.com")
        if not path_in_repo or path_in_repo.startswith("/") or ".." in path_in_repo.split("/"):
            raise ValueError("path_in_repo must be a relative path such as .github/jobtoken.yml")
        self.api_url = api_url.rstrip("/")
        self.path_in_repo = path_in_repo
        self.cache_ttl = cache_ttl
        self.timeout = timeout
        self.max_entries = max_entries
        self._token = token
        self._clock = clock
        self._session = requests.Session()
        self._session.trust_env = False
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], tuple[float, _Answer]] = OrderedDict()

    def __repr__(self) -> str:  # never show the token
        return f"GitHubPolicySource({self.api_url!r}, path_in_repo={self.path_in_repo!r})"

    def where(self, repository: str) -> str:
        return f"{self.path_in_repo} on the default branch"

    def policy_for(self, repository: str, repository_id: str) -> RepositoryPolicy | None:
        key = (repository.lower(), repository_id)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and now - cached[0] < self.cache_ttl:
                self._cache.move_to_end(key)
                answer = cached[1]
            else:
                answer = None
                cached = None
        if cached is None:
            answer = self._fetch(repository)
            with self._lock:
                self._cache[key] = (now, answer)
                self._cache.move_to_end(key)
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
        if isinstance(answer, PolicyError):
            raise answer
        return answer

    def _fetch(self, repository: str) -> _Answer:
        owner, name = repository_parts(repository)
        url = (
            f"{self.api_url}/repos/{quote(owner, safe='')}/{quote(name, safe='')}"
            f"/contents/{quote(self.path_in_repo, safe='/')}"
        )
        try:
            response = request_bounded(
                self._session,
                "GET",
                url,
                headers={
                    "Accept": "application/vnd.github.raw+json",
                    "Authorization": f"Bearer {self._token}",
                    "X-GitHub-Api-Version": "2022-11-28",
                    "User-Agent": "jobtoken-broker",
                },
                max_bytes=MAX_POLICY_BYTES,
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                total_seconds=2 * self.timeout,
            )
        except BoundedHttpError as exc:
            if exc.kind == "too_large":
                return PolicyError(
                    self.path_in_repo, 0, f"the file is larger than {MAX_POLICY_BYTES} bytes"
                )
            if exc.kind == "too_slow":
                raise PolicySourceError("the GitHub API took too long to answer") from None
            raise PolicySourceError(f"the GitHub API {exc.detail}") from None
        if response.status == 404:
            return None
        if response.status != 200:
            raise PolicySourceError(
                f"the GitHub API answered HTTP {response.status} for "
                f"{self.path_in_repo}; the broker's GitHub access must be able to read "
                "this repository's contents"
            )
        body = response.body
        try:
            return load_repository_policy(bytes(body), self.path_in_repo)
        except PolicyError as exc:
            return exc
