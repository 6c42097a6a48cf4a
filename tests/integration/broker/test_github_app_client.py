"""The GitHub App client against a fake GitHub API on loopback that checks every
documented field: a token minted with exactly the asked repositories and permissions
works on them and nowhere else, dies when revoked, an answer broader than asked is
refused (and its token revoked), and GitHub down is ``unreachable``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from jobtoken.broker.upstream.github_app import GitHubApp, GitHubAppError, permissions_for_scopes
from support.fake_github_app import FAILURES, MISBEHAVIOURS, FakeGitHubApp
from support.loopback import free_port

HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


@pytest.fixture
def github() -> Iterator[FakeGitHubApp]:
    with FakeGitHubApp(repositories=("octo-org/app", "octo-org/lib", "octo-org/infra")) as fake:
        fake.put("octo-org/app", "README.md", b"hello")
        fake.put("octo-org/lib", "README.md", b"lib")
        yield fake


@pytest.fixture
def app(github: FakeGitHubApp) -> Iterator[GitHubApp]:
    client = GitHubApp(github.app_id, github.private_key_pem, api_url=github.url, timeout=2.0)
    yield client
    client.close()


def _get(github: FakeGitHubApp, path: str, token: str) -> int:
    headers = {**HEADERS, "Authorization": f"Bearer {token}"}
    return httpx.get(github.url + path, headers=headers, trust_env=False).status_code


def test_a_token_has_exactly_the_asked_repositories_and_permissions(
    github: FakeGitHubApp, app: GitHubApp
) -> None:
    installation = app.installation_id("octo-org/app")
    assert installation == github.installation_id
    permissions = permissions_for_scopes(["contents:read", "issues:read"])
    before = time.time()
    minted = app.create_installation_token(installation, ("app", "lib"), permissions)

    assert minted.repositories == ("app", "lib")
    assert minted.permissions == {"contents": "read", "issues": "read"}
    assert before + 3600 - 2 <= minted.expires_at <= time.time() + 3600
    assert minted.token.startswith("ghs_")
    issued = github.tokens[minted.token]
    assert issued.repositories == ("octo-org/app", "octo-org/lib")
    assert issued.permissions == {"contents": "read", "issues": "read"}

    post = next(r for r in github.requests if r.method == "POST")
    assert post.path == f"/app/installations/{installation}/access_tokens"
    assert json.loads(post.body) == {
        "repositories": ["app", "lib"],
        "permissions": {"contents": "read", "issues": "read"},
    }
    assert post.headers["Accept"] == "application/vnd.github+json"
    assert post.headers["X-GitHub-Api-Version"] == "2022-11-28"

    assert _get(github, "/repos/octo-org/app/contents/README.md", minted.token) == 200
    assert _get(github, "/repos/octo-org/lib/issues", minted.token) == 200
    assert _get(github, "/repos/octo-org/infra/issues", minted.token) == 403
    assert github.problems == []


def test_a_permission_not_asked_is_not_held(github: FakeGitHubApp, app: GitHubApp) -> None:
    minted = app.create_installation_token(github.installation_id, ("app",), {"issues": "read"})
    assert _get(github, "/repos/octo-org/app/issues", minted.token) == 200
    assert _get(github, "/repos/octo-org/app/contents/README.md", minted.token) == 403
    assert github.problems == []


def test_the_installation_is_cached_per_repository(github: FakeGitHubApp, app: GitHubApp) -> None:
    assert app.installation_id("octo-org/app") == app.installation_id("Octo-Org/App")
    assert app.installation_id("octo-org/lib") == github.installation_id
    assert [r.path for r in github.requests] == [
        "/repos/octo-org/app/installation",
        "/repos/octo-org/lib/installation",
    ]
    with pytest.raises(GitHubAppError) as e:
        app.installation_id("octo-org/elsewhere")
    assert e.value.kind == "refused"
    assert github.problems == []


def test_a_revoked_token_is_refused_by_the_api_afterwards(
    github: FakeGitHubApp, app: GitHubApp
) -> None:
    minted = app.create_installation_token(github.installation_id, ("app",), {"contents": "read"})
    assert _get(github, "/repos/octo-org/app/contents/README.md", minted.token) == 200
    app.revoke_installation_token(minted.token)
    assert github.tokens[minted.token].revoked
    assert _get(github, "/repos/octo-org/app/contents/README.md", minted.token) == 401
    assert github.live_tokens() == []
    delete = github.requests[-2]
    assert (delete.method, delete.path) == ("DELETE", "/installation/token")
    assert github.problems == []


@pytest.mark.parametrize("misbehaviour", MISBEHAVIOURS)
def test_an_answer_other_than_asked_is_refused_and_its_token_revoked(
    github: FakeGitHubApp, app: GitHubApp, misbehaviour: str
) -> None:
    github.misbehave = misbehaviour
    with pytest.raises(GitHubAppError) as e:
        app.create_installation_token(github.installation_id, ("app",), {"contents": "read"})
    assert e.value.kind == "invalid_response"
    for token in github.tokens:
        assert token not in str(e.value)
    if misbehaviour == "duplicate_key":  # unparseable: no token to revoke
        assert len(github.live_tokens()) == 1
    else:
        assert github.live_tokens() == []
    assert github.problems == []


def test_github_down_is_unreachable(github: FakeGitHubApp, app: GitHubApp) -> None:
    github.stop()
    for call in (
        lambda: app.installation_id("octo-org/app"),
        lambda: app.create_installation_token(1, ("app",), {"contents": "read"}),
        lambda: app.revoke_installation_token("ghs_" + "a" * 36),
    ):
        with pytest.raises(GitHubAppError) as e:
            call()
        assert e.value.kind == "unreachable"
        assert "ghs_" not in str(e.value)


@pytest.mark.parametrize("failure", FAILURES)
def test_bounds_an_oversized_redirected_slow_or_failing_answer(
    github: FakeGitHubApp, failure: str
) -> None:
    github.fail, github.slow_seconds = failure, 2.0
    app = GitHubApp(github.app_id, github.private_key_pem, api_url=github.url, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(GitHubAppError) as e:
        app.create_installation_token(github.installation_id, ("app",), {"contents": "read"})
    app.close()
    assert time.monotonic() - started < 1.5
    wanted = {"huge": "invalid_response", "redirect": "refused"}.get(failure, "unreachable")
    assert e.value.kind == wanted
    assert [r.path for r in github.requests] == [
        f"/app/installations/{github.installation_id}/access_tokens"
    ]  # the redirect is not followed


def test_the_process_environment_is_ignored(
    github: FakeGitHubApp, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Trusting the environment, every call would go to this dead proxy (unreachable),
    and the .netrc login would replace the app JWT and the token (401 at the fake)."""
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-app-jwt\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    app = GitHubApp(github.app_id, github.private_key_pem, api_url=github.url, timeout=2.0)
    minted = app.create_installation_token(
        app.installation_id("octo-org/app"), ("app",), {"contents": "read"}
    )
    app.revoke_installation_token(minted.token)
    app.close()
    assert github.live_tokens() == []
    assert github.problems == []


def test_the_fake_catches_a_bad_jwt_and_a_bad_body(github: FakeGitHubApp) -> None:
    """The fake's checks are real: what the client never sends is caught."""
    key = github.private_key_pem
    now = int(time.time())
    long_lived = jwt.encode(
        {"iat": now - 60, "exp": now + 3600, "iss": github.app_id}, key, algorithm="RS256"
    )
    wrong_issuer = jwt.encode(
        {"iat": now - 60, "exp": now + 500, "iss": "other"}, key, algorithm="RS256"
    )
    good = jwt.encode(
        {"iat": now - 60, "exp": now + 500, "iss": github.app_id}, key, algorithm="RS256"
    )
    url = f"{github.url}/app/installations/{github.installation_id}/access_tokens"
    body = {"repositories": ["app"], "permissions": {"contents": "read"}}
    for bearer, sent, wanted in [
        (long_lived, body, 401),
        (wrong_issuer, body, 401),
        (good, {**body, "repository_ids": [1]}, 422),
        (good, {"repositories": [], "permissions": {"contents": "read"}}, 422),
        (good, {"repositories": ["app"], "permissions": {"administration": "write"}}, 422),
    ]:
        headers = {**HEADERS, "Authorization": f"Bearer {bearer}"}
        found = len(github.problems)
        response = httpx.post(url, json=sent, headers=headers, trust_env=False)
        assert response.status_code == wanted
        assert len(github.problems) > found  # each one is recorded
    assert github.tokens == {}
