"""Repository policies from the default branch, through a fake GitHub API on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from jobtoken.broker.upstream.github_policy_source import DEFAULT_POLICY_PATH, GitHubPolicySource
from jobtoken.policy import PolicyError, PolicySourceError, evaluate
from support.fake_github import FakeGitHubApi
from support.loopback_guard import loopback_only

POLICY = b"""\
version: 1
repository: octo-org/app
repository_id: "690001234"
connectors:
  hubspot:
    - scopes: [contacts.read]
      max_ttl: 5m
      when: {ref: refs/heads/main}
"""
PERMISSIVE = POLICY.replace(b"[contacts.read]", b"[contacts.read, contacts.write]")
CLAIMS = {
    "repository": "octo-org/app",
    "repository_id": "690001234",
    "repository_owner_id": "9",
    "ref": "refs/heads/main",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def github() -> Iterator[FakeGitHubApi]:
    with FakeGitHubApi(slow_seconds=1.5) as api:
        api.put("octo-org/app", DEFAULT_POLICY_PATH, POLICY)
        yield api


@pytest.fixture
def clock() -> Clock:
    return Clock()


def source_for(github: FakeGitHubApi, clock: Clock, **settings: Any) -> GitHubPolicySource:
    return GitHubPolicySource(github.url, github.token, clock=clock, **settings)


def test_policy_is_read_from_the_default_branch(github: FakeGitHubApi, clock: Clock) -> None:
    github.put("octo-org/app", DEFAULT_POLICY_PATH, PERMISSIVE, branch="feature")
    with loopback_only():
        policy = source_for(github, clock).policy_for("octo-org/app", "690001234")
    assert policy is not None
    assert policy.connectors["hubspot"][0].scopes == {"contacts.read"}
    (request,) = github.requests
    assert request.path == "/repos/octo-org/app/contents/.github/jobtoken.yml"
    assert request.query == {}, "no ref: GitHub answers from the default branch"
    assert request.authorized
    assert request.accept == "application/vnd.github.raw+json"


def test_policy_from_github_decides_a_request(github: FakeGitHubApi, clock: Clock) -> None:
    source = source_for(github, clock)
    allowed = evaluate(source, None, CLAIMS, "hubspot", ["contacts.read"], 600)
    assert (allowed.allowed, allowed.max_ttl) == (True, 300)
    denied = evaluate(source, None, CLAIMS, "hubspot", ["contacts.write"])
    assert denied.reason == "scope_not_allowed"


def test_answers_are_cached_for_cache_ttl(github: FakeGitHubApi, clock: Clock) -> None:
    source = source_for(github, clock, cache_ttl=60.0)
    first = source.policy_for("octo-org/app", "690001234")
    clock.now += 59
    assert source.policy_for("Octo-Org/App", "690001234") is first
    assert len(github.requests) == 1
    github.put("octo-org/app", DEFAULT_POLICY_PATH, PERMISSIVE)
    clock.now += 2
    refreshed = source.policy_for("octo-org/app", "690001234")
    assert refreshed is not None
    assert "contacts.write" in refreshed.connectors["hubspot"][0].scopes
    assert len(github.requests) == 2


def test_cache_is_bounded(github: FakeGitHubApi, clock: Clock) -> None:
    source = source_for(github, clock, max_entries=2)
    for index in range(3):
        source.policy_for("octo-org/app", str(index + 1))
    source.policy_for("octo-org/app", "1")
    assert len(github.requests) == 4, "the oldest entry was evicted"


def test_missing_policy_is_none_and_denies(github: FakeGitHubApi, clock: Clock) -> None:
    source = source_for(github, clock)
    assert source.policy_for("octo-org/other", "5") is None
    decision = evaluate(source, None, {**CLAIMS, "repository": "octo-org/other"}, "hubspot", ["x"])
    assert decision.reason == "no_policy"
    assert ".github/jobtoken.yml on the default branch" in decision.description


@pytest.mark.parametrize("status", [403, 401, 429, 500, 502, 503, 301])
def test_error_answers_deny_and_are_not_cached(
    github: FakeGitHubApi, clock: Clock, status: int
) -> None:
    source = source_for(github, clock)
    github.fail_next(status)
    with pytest.raises(PolicySourceError, match=f"HTTP {status}") as caught:
        source.policy_for("octo-org/app", "690001234")
    assert github.token not in str(caught.value)
    github.fail_next(status)
    decision = evaluate(source, None, CLAIMS, "hubspot", ["contacts.read"])
    assert (decision.allowed, decision.reason) == (False, "policy_unavailable")
    assert source.policy_for("octo-org/app", "690001234") is not None, "failures are not cached"


def test_wrong_token_denies(github: FakeGitHubApi, clock: Clock) -> None:
    source = GitHubPolicySource(github.url, "not-the-token", clock=clock)
    with pytest.raises(PolicySourceError, match="HTTP 401"):
        source.policy_for("octo-org/app", "690001234")


def test_timeout_denies_quickly(github: FakeGitHubApi, clock: Clock) -> None:
    source = source_for(github, clock, timeout=0.3)
    github.fail_next("slow")
    started = time.monotonic()
    decision = evaluate(source, None, CLAIMS, "hubspot", ["contacts.read"])
    assert (decision.allowed, decision.reason) == (False, "policy_unavailable")
    assert "ReadTimeout" in decision.description
    assert time.monotonic() - started < 1.2


def test_unreachable_api_denies(clock: Clock) -> None:
    with FakeGitHubApi() as gone:
        url = gone.url
    source = GitHubPolicySource(url, "t", clock=clock, timeout=0.5)
    with pytest.raises(PolicySourceError, match="could not be reached"):
        source.policy_for("octo-org/app", "690001234")


def test_invalid_or_oversized_file_is_a_policy_error(github: FakeGitHubApi, clock: Clock) -> None:
    github.put("octo-org/bad", DEFAULT_POLICY_PATH, POLICY + b"extra: 1\n")
    github.put("octo-org/huge", DEFAULT_POLICY_PATH, b"# " + b"x" * (1024 * 1024))
    source = source_for(github, clock)
    with pytest.raises(PolicyError, match="unknown key 'extra'") as caught:
        source.policy_for("octo-org/bad", "1")
    assert caught.value.line == 9
    with pytest.raises(PolicyError, match="larger than"):
        source.policy_for("octo-org/huge", "1")
    requests = len(github.requests)
    with pytest.raises(PolicyError):
        source.policy_for("octo-org/bad", "1")
    assert len(github.requests) == requests, "an invalid file is cached like any answer"


def test_repository_names_are_checked_before_building_the_url(
    github: FakeGitHubApi, clock: Clock
) -> None:
    with pytest.raises(PolicySourceError, match="owner/name"):
        source_for(github, clock).policy_for("octo-org/../../admin", "1")
    assert github.requests == []


def test_token_never_shows(github: FakeGitHubApi, clock: Clock) -> None:
    source = source_for(github, clock)
    assert github.token not in repr(source)
    assert github.token not in str(vars(source).get("api_url"))


@pytest.mark.parametrize(
    ("api_url", "path"),
    [
        ("http://api.github.com", DEFAULT_POLICY_PATH),
        ("ftp://127.0.0.1", DEFAULT_POLICY_PATH),
        ("https://api.github.com?x=1", DEFAULT_POLICY_PATH),
        ("https://api.github.com", "/etc/passwd"),
        ("https://api.github.com", "../x.yml"),
        ("https://api.github.com", ""),
    ],
)
def test_configuration_is_checked(api_url: str, path: str) -> None:
    with pytest.raises(ValueError, match="must be"):
        GitHubPolicySource(api_url, "t", path_in_repo=path)
