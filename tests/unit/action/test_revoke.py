"""The revoke use case in-process against the fake broker."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from jobtoken.action.revoke import run_revoke
from support.fake_broker import FakeBroker
from support.oidc_issuer import FakeOidcIssuer


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    with FakeBroker() as fake:
        yield fake


def revoke(env: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    code = run_revoke(env, out)
    return code, out.getvalue()


def test_revoke_masks_the_token_and_revokes_it(broker: FakeBroker) -> None:
    code, log = revoke({"INPUT_BROKER_URL": broker.url, "INPUT_TOKEN": "jbt_0123456789"})
    assert code == 0
    assert log.splitlines()[0] == "::add-mask::jbt_0123456789"
    assert broker.revoked == ["jbt_0123456789"]
    assert "jobtoken revoke: revoked the token" in log


def test_revoke_by_id_needs_the_id_token_permission(broker: FakeBroker) -> None:
    code, log = revoke(
        {"INPUT_BROKER_URL": broker.url, "INPUT_TOKEN_ID": "tok_1", "INPUT_FAIL_ON_ERROR": "true"}
    )
    assert code == 1
    assert "permissions: id-token: write" in log
    assert broker.requests == []


def test_revoke_by_id_sends_a_fresh_id_token(
    broker: FakeBroker, oidc_issuer: FakeOidcIssuer
) -> None:
    env = {**oidc_issuer.runner_env(), "INPUT_BROKER_URL": broker.url, "INPUT_TOKEN_ID": "tok_1"}
    code, _ = revoke(env)
    assert code == 0
    assert broker.requests[0].form["subject_token"] == oidc_issuer.issued[0]


def test_a_failure_is_a_warning_unless_fail_on_error(
    broker: FakeBroker, retry_pauses: list[float]
) -> None:
    broker.revoke_status = 503
    env = {"INPUT_BROKER_URL": broker.url, "INPUT_TOKEN": "jbt_0123456789", "INPUT_TIMEOUT": "2s"}
    code, log = revoke(env)
    assert retry_pauses, "the 503 was retried"
    assert code == 0
    assert "::warning title=jobtoken revoke%3A failed::the broker did not revoke" in log
    code, log = revoke({**env, "INPUT_FAIL_ON_ERROR": "true"})
    assert code == 1
    assert "::error title=jobtoken revoke%3A failed::" in log


def test_an_unreachable_broker_is_reported(broker: FakeBroker, retry_pauses: list[float]) -> None:
    url = broker.url
    broker.stop()
    code, log = revoke(
        {"INPUT_BROKER_URL": url, "INPUT_TOKEN": "jbt_0123456789", "INPUT_TIMEOUT": "1s"}
    )
    assert code == 0
    assert "could not connect to" in log
    assert "jbt_0123456789" not in log.split("\n", 1)[1]


def test_nothing_to_revoke_is_a_notice() -> None:
    code, log = revoke({"INPUT_BROKER_URL": "https://tokens.example.com"})
    assert code == 0
    assert log.startswith("::notice title=jobtoken revoke::nothing to revoke")


def test_a_bad_input_is_a_warning_by_default() -> None:
    code, log = revoke(
        {"INPUT_BROKER_URL": "http://tokens.example.com", "INPUT_TOKEN": "jbt_0123456789"}
    )
    assert code == 0
    assert "input `broker-url`: must use https://" in log


@pytest.mark.parametrize(
    ("provider", "cloud"),
    [
        ("aws-secrets-manager", "AWS"),
        ("gcp-secret-manager", "Google"),
        ("azure-key-vault", "Entra"),
    ],
)
def test_a_cloud_that_cannot_revoke_one_session_says_so_as_a_notice(
    provider: str, cloud: str
) -> None:
    code, log = revoke({"INPUT_PROVIDER": provider, "INPUT_TOKEN": "secret_0123456789"})
    assert code == 0
    notice = next(line for line in log.splitlines() if line.startswith("::notice "))
    assert f"::nothing to revoke: {cloud}" in notice


def test_an_empty_token_id_names_the_empty_inputs_and_what_to_pass() -> None:
    code, log = revoke({"INPUT_BROKER_URL": "https://tokens.example.com", "INPUT_TOKEN_ID": ""})
    assert code == 0
    (notice,) = [line for line in log.splitlines() if line.startswith("::notice ")]
    message = notice.split("::", 2)[2]
    assert message.startswith(
        "nothing to revoke: the `token` and `token-id` inputs are both empty. "
        "Pass `token: ${{ steps.ID.outputs.token }}` "
        "(or `token-id: ${{ steps.ID.outputs.token-id }}`), where ID is the id of the "
        "exchange step"
    )
    assert "the token input is empty" not in log


def test_with_a_secret_manager_an_empty_revoke_handle_is_named_too() -> None:
    code, log = revoke({"INPUT_PROVIDER": "vault"})
    assert code == 0
    assert "the `token`, `token-id` and `revoke-handle` inputs are all empty" in log
