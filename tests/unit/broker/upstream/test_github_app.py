"""The GitHub App client's pure parts: scope names to GitHub permissions, the app JWT
(decoded with PyJWT and the public key), argument checks made before any request, and
the checks of a token answer."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jobtoken.broker.upstream import github_app
from jobtoken.broker.upstream.github_app import (
    GitHubApp,
    GitHubAppError,
    InstallationToken,
    permissions_for_scopes,
)

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
#: nothing listens there: a request would fail as unreachable, not as ValueError
CLOSED = "http://127.0.0.1:9"


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_scopes_map_to_github_permissions() -> None:
    assert permissions_for_scopes(
        ["contents:read", "issues:write", "pull_requests:write", "metadata:read"]
    ) == {"contents": "read", "issues": "write", "pull_requests": "write", "metadata": "read"}
    assert permissions_for_scopes([]) == {}


@pytest.mark.parametrize(
    "scopes", [["issues:read", "issues:write"], ["issues:write", "issues:read"]]
)
def test_the_higher_level_wins(scopes: list[str]) -> None:
    assert permissions_for_scopes(scopes) == {"issues": "write"}


@pytest.mark.parametrize(
    "scope",
    [
        "administration:write",
        "contents:admin",
        "contents",
        "contents:",
        ":read",
        "metadata:write",
        "workflows:read",
        "Contents:read",
        "contents:read:extra",
    ],
)
def test_unknown_names_and_levels_are_refused_naming_the_scope(scope: str) -> None:
    with pytest.raises(ValueError, match=r"not a GitHub App scope|takes") as e:
        permissions_for_scopes(["issues:read", scope])
    assert repr(scope) in str(e.value)


def test_app_jwt_claims_and_header() -> None:
    app = GitHubApp("424242", PEM, api_url=CLOSED)
    now = 1_900_000_000
    token = app.app_jwt(now)
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT"}
    claims = jwt.decode(
        token,
        KEY.public_key(),
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {"iat": now - 60, "exp": now + 540, "iss": "424242"}
    assert claims["exp"] - claims["iat"] <= 600


def test_app_jwt_defaults_to_the_current_time_and_verifies() -> None:
    app = GitHubApp("424242", PEM, api_url=CLOSED)
    before = int(time.time())
    claims = jwt.decode(app.app_jwt(), KEY.public_key(), algorithms=["RS256"])
    assert before - 60 <= claims["iat"] <= int(time.time()) - 60
    assert claims["exp"] == claims["iat"] + 600


def test_no_key_in_repr() -> None:
    app = GitHubApp("424242", PEM, api_url=CLOSED)
    assert repr(app) == f"GitHubApp(app_id='424242', api_url={CLOSED!r})"
    assert "PRIVATE" not in repr(vars(app))
    token = InstallationToken("ghs_secret", 1, {"contents": "read"}, ("app",))
    assert "ghs_secret" not in repr(token)


@pytest.mark.parametrize(
    "pem",
    [
        b"not a key",
        PEM.replace(b"A", b"B", 3),
        _pem(ec.generate_private_key(ec.SECP256R1())),
        _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505 (refused)
        KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        ),
    ],
)
def test_a_bad_key_is_refused_without_quoting_it(pem: bytes) -> None:
    with pytest.raises(ValueError, match="private key") as e:
        GitHubApp("424242", pem, api_url=CLOSED)
    assert "BEGIN" not in str(e.value)
    assert e.value.__cause__ is None


@pytest.mark.parametrize(
    "url", ["http://api.github.com", "ftp://127.0.0.1", "https://", "https://h/?q=1"]
)
def test_api_url_must_be_https_or_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="https"):
        GitHubApp("424242", PEM, api_url=url)


@pytest.mark.parametrize("app_id", ["", "42 42", "42/42", "x" * 65])
def test_app_id_is_checked(app_id: str) -> None:
    with pytest.raises(ValueError, match="app_id"):
        GitHubApp(app_id, PEM, api_url=CLOSED)


@pytest.mark.parametrize(
    ("repositories", "permissions"),
    [
        ((), {"contents": "read"}),  # no repositories: GitHub would grant them all
        (("octo-org/app",), {"contents": "read"}),
        (("app", "APP"), {"contents": "read"}),
        (("..",), {"contents": "read"}),
        (("app",), {}),  # no permissions: GitHub would grant the app's all
        (("app",), {"contents": "admin"}),
        (("app",), {"administration": "write"}),
        (tuple(f"r{i}" for i in range(101)), {"contents": "read"}),
    ],
)
def test_token_arguments_are_checked_before_any_request(
    repositories: tuple[str, ...], permissions: dict[str, str]
) -> None:
    app = GitHubApp("424242", PEM, api_url=CLOSED)
    with pytest.raises(ValueError, match=r"repositor|permission"):
        app.create_installation_token(1, repositories, permissions)


@pytest.mark.parametrize("repository", ["octo-org", "octo-org/", "/app", "a/b/c", "o/.."])
def test_installation_id_wants_owner_slash_name(repository: str) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        GitHubApp("424242", PEM, api_url=CLOSED).installation_id(repository)


def test_granted_permissions_must_equal_those_asked_but_metadata_read() -> None:
    asked = {"contents": "read"}
    check = github_app._granted_permissions
    assert check({"contents": "read"}, asked) == {"contents": "read"}
    assert check({"contents": "read", "metadata": "read"}, asked) == {
        "contents": "read",
        "metadata": "read",
    }
    for granted in [{"contents": "write"}, {"contents": "read", "issues": "read"}, {}, []]:
        with pytest.raises(GitHubAppError) as e:
            check(granted, asked)
        assert e.value.kind == "invalid_response"


@pytest.mark.parametrize(
    "value", ["2030-01-01T00:00:00", "2030-02-30T00:00:00Z", "2001-01-01T00:00:00Z", 1_900_000_000]
)
def test_expires_at_must_be_a_future_utc_time(value: object) -> None:
    with pytest.raises(GitHubAppError) as e:
        github_app._expiry(value)
    assert e.value.kind == "invalid_response"
    assert github_app._expiry("2030-01-01T00:00:00Z") == 1_893_456_000
