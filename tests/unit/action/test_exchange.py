"""The exchange use case in-process: fake runner issuer + fake broker, real files."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobtoken.action.errors import InputError
from jobtoken.action.exchange import (
    encode_revoke_handle,
    job_end_note,
    run_exchange,
    ttl_capped_note,
)
from jobtoken.action.provider import IssuedToken
from jobtoken.action.revoke import decode_revoke_handle
from support.fake_broker import FakeBroker
from support.oidc_issuer import FakeOidcIssuer

from .test_runtime import parse_file_commands


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    with FakeBroker() as fake:
        yield fake


class Step:
    def __init__(self, tmp_path: Path, issuer: FakeOidcIssuer, broker: FakeBroker) -> None:
        self.files = {
            name: tmp_path / name.lower()
            for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")
        }
        for path in self.files.values():
            path.write_text("")
        self.env = {
            **issuer.runner_env(),
            **{name: str(path) for name, path in self.files.items()},
            "INPUT_BROKER_URL": broker.url,
            "INPUT_CONNECTOR": "hubspot",
            "INPUT_SCOPES": "crm.read",
            "INPUT_TIMEOUT": "5s",
        }
        self.out = io.StringIO()

    def run(self, **inputs: str) -> int:
        self.env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
        return run_exchange(self.env, self.out, clock=lambda: 1_800_000_000.0)

    def read(self, name: str) -> str:
        return self.files[name].read_text()


@pytest.fixture
def step(tmp_path: Path, oidc_issuer: FakeOidcIssuer, broker: FakeBroker) -> Step:
    return Step(tmp_path, oidc_issuer, broker)


def test_success_masks_first_then_writes_outputs_and_summary(
    step: Step, broker: FakeBroker
) -> None:
    assert step.run() == 0

    token = broker.issued[0]
    lines = step.out.getvalue().splitlines()
    first_mention = next(i for i, line in enumerate(lines) if token in line)
    assert lines[first_mention] == f"::add-mask::{token}"
    assert sum(token in line for line in lines) == 1
    outputs = parse_file_commands(step.read("GITHUB_OUTPUT"))
    assert outputs == {
        "token": token,
        "token-id": outputs["token-id"],
        "expires-at": "2027-01-15T08:15:00Z",
        "scopes": "crm.read",
        "revoke-handle": "",
    }
    assert outputs["token-id"].startswith("tok_")
    summary = step.read("GITHUB_STEP_SUMMARY")
    assert "| connector | hubspot |" in summary
    assert f"| token id | {outputs['token-id']} |" in summary
    assert "| at job end | the broker's lease record ends with the job" in summary
    assert token not in summary
    assert step.read("GITHUB_ENV") == ""


def test_the_summary_can_be_switched_off(step: Step) -> None:
    assert step.run(summary="false") == 0
    assert step.read("GITHUB_STEP_SUMMARY") == ""


def test_export_env_is_opt_in(step: Step, broker: FakeBroker) -> None:
    assert step.run(export_env="HUBSPOT_TOKEN") == 0
    assert parse_file_commands(step.read("GITHUB_ENV")) == {"HUBSPOT_TOKEN": broker.issued[0]}


def test_a_rejected_token_is_revoked_and_nothing_is_written(step: Step, broker: FakeBroker) -> None:
    broker.override(scope="crm.read crm.admin")

    assert step.run() == 1

    assert broker.revoked == broker.issued
    assert step.read("GITHUB_OUTPUT") == ""
    assert step.read("GITHUB_ENV") == ""
    assert step.read("GITHUB_STEP_SUMMARY") == ""
    log = step.out.getvalue()
    assert "::error title=jobtoken%3A token rejected::the provider granted scopes" in log
    assert "it was revoked and no output was written" in log


def test_a_failed_revocation_of_a_rejected_token_is_a_warning(
    step: Step, broker: FakeBroker
) -> None:
    broker.override(expires_in=10**6)
    broker.revoke_status = 400
    assert step.run() == 1
    assert "::warning::could not revoke the rejected token" in step.out.getvalue()


def test_an_invalid_input_makes_no_request(
    step: Step, broker: FakeBroker, oidc_issuer: FakeOidcIssuer
) -> None:
    assert step.run(scopes="a a") == 1
    assert broker.requests == []
    assert oidc_issuer.requests == []
    assert step.out.getvalue() == (
        "::error title=jobtoken%3A invalid input `scopes`::input `scopes`: "
        "lists the scope a more than once\n"
    )


def test_an_unknown_provider_is_an_input_error(step: Step) -> None:
    assert step.run(provider="keychain") == 1
    assert "unknown provider keychain: use one of broker, vault" in step.out.getvalue()


def test_a_denial_shows_the_claims_block(step: Step, broker: FakeBroker) -> None:
    broker.reply = (400, {"error": "unauthorized_client", "error_description": "no rule"})
    assert step.run() == 1
    log = step.out.getvalue()
    assert "::group::jobtoken: the job's ID token claims" in log
    assert "\nrepository: octo-org/octo-repo\n" in log
    assert "\nevent_name: push\n" in log


def test_an_unexpected_exception_is_reported_without_its_text(
    step: Step, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("secret-in-exception")

    monkeypatch.setattr("jobtoken.action.exchange.check_issued_token", explode)
    assert step.run() == 1
    log = step.out.getvalue()
    assert "internal error (RuntimeError)" in log
    assert "secret-in-exception" not in log
    assert step.read("GITHUB_OUTPUT") == ""


def test_the_revoke_handle_round_trips_and_is_bound_to_its_provider() -> None:
    handle = encode_revoke_handle("vault", {"lease_id": "db/creds/x", "vault_token": "hvs.x"})
    assert re.fullmatch(r"jt1\.[A-Za-z0-9_-]+", handle)
    assert decode_revoke_handle(handle, "vault") == {
        "lease_id": "db/creds/x",
        "vault_token": "hvs.x",
    }
    assert encode_revoke_handle("broker", {}) == ""
    with pytest.raises(InputError, match="another provider"):
        decode_revoke_handle(handle, "broker")
    with pytest.raises(InputError, match="not the revoke-handle output"):
        decode_revoke_handle("jt1.!!!", "vault")


def test_a_token_without_expiry_passes_only_when_allowed_and_the_summary_says_long_lived(
    step: Step, broker: FakeBroker
) -> None:
    broker.override(expires_in=None)
    assert step.run() == 1
    assert step.read("GITHUB_OUTPUT") == ""

    assert step.run(allow_no_expiry="true") == 0
    assert parse_file_commands(step.read("GITHUB_OUTPUT"))["expires-at"] == ""
    assert "| expires at | no expiry: a long-lived token (allow-no-expiry) |" in step.read(
        "GITHUB_STEP_SUMMARY"
    )


def _issued(issued_token_type: str | None, *, upstream_revoked: bool = False) -> IssuedToken:
    return IssuedToken(
        "t", "Bearer", 60, None, "id", issued_token_type,
        upstream_revoked_at_job_end=upstream_revoked,
    )  # fmt: skip


def test_the_summary_says_where_job_end_revocation_reaches_a_minted_jwt() -> None:
    note = job_end_note("broker", _issued("urn:ietf:params:oauth:token-type:jwt"))
    assert "offline through the JWKS" in note
    assert "only its expiry bounds it" in note
    assert "expiry bound it" in job_end_note("vault", _issued(None))


def test_the_summary_says_plainly_whether_a_passthrough_token_is_revoked_upstream() -> None:
    lease = "urn:ietf:params:oauth:token-type:access_token"
    assert "is not revoked upstream" in job_end_note("broker", _issued(lease))
    revoked = job_end_note("broker", _issued(lease, upstream_revoked=True))
    assert revoked.startswith("revoked at its upstream")
    # only a broker can promise that
    assert "revoked at its upstream" not in job_end_note(
        "vault", _issued(lease, upstream_revoked=True)
    )


def test_a_ttl_capped_by_the_provider_is_reported_with_both_lifetimes(
    step: Step, broker: FakeBroker
) -> None:
    broker.override(expires_in=300)
    assert step.run(ttl="15m") == 0
    assert (
        "::notice title=jobtoken%3A ttl capped::ttl capped: requested 15m, granted 5m "
        "(a maximum on the broker is lower: the repository admins' policy (max_ttl), "
        "the connector's or the broker's own). Set ttl to 5m or less to ask for what "
        "the job gets\n"
    ) in step.out.getvalue()


@pytest.mark.parametrize(
    ("limited_by", "owner"),
    [
        ("connector", "the connector's max_ttl_seconds, set by the broker's operators"),
        ("policy", "the repository admins' policy (its rule's max_ttl)"),
        ("broker", "the broker's own [tokens] max_ttl_seconds, set by its operators"),
    ],
)
def test_a_ttl_capped_notice_names_the_limit_the_broker_says_applied(
    step: Step, broker: FakeBroker, limited_by: str, owner: str
) -> None:
    broker.override(expires_in=300, ttl_limited_by=limited_by)
    assert step.run(ttl="15m") == 0
    assert (
        f"ttl capped: requested 15m, granted 5m (the limit that applied: {owner}). Set ttl "
        "to 5m or less"
    ) in step.out.getvalue()


def test_a_ttl_granted_in_full_draws_no_capped_notice(step: Step, broker: FakeBroker) -> None:
    broker.override(expires_in=898)
    assert step.run(ttl="15m") == 0
    assert "ttl capped" not in step.out.getvalue()


def test_a_capped_ttl_of_another_provider_names_that_provider() -> None:
    assert ttl_capped_note("vault", 3600, 1799).startswith(
        "ttl capped: requested 1h, granted 1799s (the vault provider's maximum is lower)"
    )


def test_a_200_json_that_is_not_a_token_response_is_one_error_naming_broker_url(
    step: Step, broker: FakeBroker
) -> None:
    broker.reply = (200, {"status": "ok", "version": "1.2"})  # a health endpoint, say
    assert step.run() == 1
    errors = [line for line in step.out.getvalue().splitlines() if line.startswith("::error")]
    assert len(errors) == 1, errors
    assert "with JSON that is not a token response (no access_token)" in errors[0]
    assert (
        "this URL does not look like a jobtoken broker/RFC 8693 endpoint: check broker-url"
        in (errors[0])
    )
    assert "revoked" not in step.out.getvalue()  # there was no token to revoke
    assert len(broker.requests_to("/revoke")) == 0
