"""Each secret-manager provider, end to end through a real act run.

For every provider (OpenBao, moto, the GCP and Azure fakes) the same cases run
through `uses: owner/jobtoken@v1`: the good secret is exchanged, used and
revoked; a secret with extra scopes, a distant expiry, no expiry, or bad token
text fails the step closed with no output; no expiry passes only with
`allow-no-expiry: true`. Every run asserts that no connector token and no
cloud credential appears anywhere in the job log.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.act import ActRun
from support.aws_server import MotoServer
from support.fake_azure import FakeAzure
from support.fake_gcp import FakeGcp
from support.oidc_issuer import FakeOidcIssuer
from support.openbao import OpenBaoDevServer
from support.provider_workflow import provider_workflow

from .conftest import RunAct
from .provider_servers import Deployed

pytestmark = pytest.mark.e2e

PROVIDERS = ["vault", "aws", "gcp", "azure"]
REVOKE_SAYS = {
    "vault": "revoked the Vault token",
    "aws": "nothing to revoke: AWS cannot revoke a single role session",
    "gcp": "nothing to revoke: Google cannot revoke a federated access token",
    "azure": "nothing to revoke: Entra ID cannot revoke a single access token",
}
#: case -> (extra inputs, the check's reason in the log)
REJECTED = {
    "extra": ({}, "granted scopes that were not requested: 'crm.write'"),
    "distant": ({}, "longer than the 900 s asked for"),
    "noexpiry": ({}, "said nothing about when the token expires"),
    "bad": ({}, "contains spaces, line breaks, control or non-ASCII characters"),
}
# AWS temporary credentials as moto (and AWS) issue them
AWS_CREDENTIAL = re.compile(r"ASIA[A-Z0-9]{16}|FQoGZXIvYXdzE")

ROOT = Path(__file__).resolve().parents[2]


def _deployed(provider: str, request: pytest.FixtureRequest) -> tuple[Any, Deployed]:
    pair: tuple[Any, Deployed] = request.getfixturevalue(f"{provider}_deployed")
    return pair


def _run(
    provider: str,
    case: str,
    request: pytest.FixtureRequest,
    run_act: RunAct,
    issuer: FakeOidcIssuer,
    **extra: str,
) -> tuple[ActRun, Any, Deployed]:
    server, deployed = _deployed(provider, request)
    if isinstance(server, MotoServer):
        server.enforce_auth(unchecked=1)  # STS is unsigned on AWS too; Secrets Manager is checked
    inputs = {**deployed.inputs[case], "scopes": "crm.read", "ttl": "15m", **extra}
    run = run_act(provider_workflow(inputs, revoke=case == "ok"), issuer=issuer)
    _assert_no_secret_in_log(run, server, deployed)
    return run, server, deployed


def _cloud_secrets(server: Any) -> list[str]:
    if isinstance(server, FakeGcp):
        return list(server._grants)
    if isinstance(server, FakeAzure):
        return list(server._tokens)
    return []


def _assert_no_secret_in_log(run: ActRun, server: Any, deployed: Deployed) -> None:
    for token in deployed.tokens.values():
        for part in token.split():
            assert part not in run.log, "a connector token leaked into the job log"
    assert "injected-8c7b" not in run.log
    for credential in _cloud_secrets(server):
        assert credential not in run.log, "a cloud credential leaked into the job log"
    assert not AWS_CREDENTIAL.search(run.log), "AWS temporary credentials leaked into the job log"
    handle = run.steps["exchange"].outputs.get("revoke-handle", "")
    if handle:
        assert handle not in run.log
        state = json.loads(base64.urlsafe_b64decode(handle[4:] + "=" * (-len(handle[4:]) % 4)))[
            "state"
        ]
        for value in state.values():
            if value.startswith("s."):  # a Vault token
                assert value not in run.log, "the Vault token leaked into the job log"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_good_secret_is_exchanged_used_and_revoked(
    provider: str, request: pytest.FixtureRequest, run_act: RunAct, e2e_issuer: FakeOidcIssuer
) -> None:
    run, server, deployed = _run(provider, "ok", request, run_act, e2e_issuer)

    assert run.steps["exchange"].outcome == "success", run.log
    outputs = run.steps["exchange"].outputs
    assert outputs["token"] == deployed.tokens["ok"]
    assert outputs["scopes"] == "crm.read"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", outputs["expires-at"])
    assert "calling the connector with *** (" in run.log
    assert run.steps["revoke"].outcome == "success"
    assert REVOKE_SAYS[provider] in run.log
    if isinstance(server, OpenBaoDevServer):
        handle = outputs["revoke-handle"][4:]
        state = json.loads(base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4)))["state"]
        with pytest.raises(RuntimeError, match="403"):
            server.api("GET", "auth/token/lookup-self", token=state["vault_token"])


@pytest.mark.parametrize("case", sorted(REJECTED))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_bad_secrets_fail_closed(
    provider: str,
    case: str,
    request: pytest.FixtureRequest,
    run_act: RunAct,
    e2e_issuer: FakeOidcIssuer,
) -> None:
    extra, reason = REJECTED[case]
    server, _ = _deployed(provider, request)
    before = _vault_accessors(server)
    run, _, _ = _run(provider, case, request, run_act, e2e_issuer, **extra)

    assert run.steps["exchange"].outcome == "failure", run.log
    assert run.steps["exchange"].outputs.get("token", "") == ""
    assert run.steps["use"].outcome == "skipped"
    assert reason in run.log
    # a rejected token is revoked: no Vault token of this run is left alive
    assert _vault_accessors(server) == before


def _vault_accessors(server: Any) -> list[str]:
    if not isinstance(server, OpenBaoDevServer):
        return []
    keys: list[str] = server.api("LIST", "auth/token/accessors")["data"]["keys"]
    return sorted(keys)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_expiry_passes_only_when_allowed(
    provider: str, request: pytest.FixtureRequest, run_act: RunAct, e2e_issuer: FakeOidcIssuer
) -> None:
    run, _, deployed = _run(
        provider, "noexpiry", request, run_act, e2e_issuer, **{"allow-no-expiry": "true"}
    )

    assert run.steps["exchange"].outcome == "success", run.log
    assert run.steps["exchange"].outputs["token"] == deployed.tokens["noexpiry"]
    assert run.steps["exchange"].outputs["expires-at"] == ""
    assert "expires at (no expiry)" in run.log


EXAMPLES = sorted(p.stem for p in (ROOT / "examples" / "workflows").glob("*.yml"))
PROVIDER_EXAMPLES = ["vault", "aws-secrets-manager", "gcp-secret-manager", "azure-key-vault"]
#: workflows for the policy admins' repository: they run the CLI, not the action
ADMIN_EXAMPLES = ["policy-review"]


def test_every_provider_has_an_example() -> None:
    assert set(PROVIDER_EXAMPLES) <= set(EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_workflows_use_only_declared_inputs(example: str) -> None:
    workflow = yaml.safe_load((ROOT / "examples" / "workflows" / f"{example}.yml").read_text())
    declared = {
        "owner/jobtoken": set(yaml.safe_load((ROOT / "action.yml").read_text())["inputs"]),
        "owner/jobtoken/revoke": set(
            yaml.safe_load((ROOT / "revoke" / "action.yml").read_text())["inputs"]
        ),
    }
    # the examples pin a commit SHA (`owner/jobtoken@<sha>`): the inputs do not depend on it
    steps = [
        (s["uses"].replace("<owner>", "owner").split("@", 1)[0], s)
        for job in workflow["jobs"].values()
        for s in job["steps"]
        if "uses" in s
    ]
    ours = [(action, step) for action, step in steps if action.startswith("owner/jobtoken")]
    if example not in ADMIN_EXAMPLES:
        assert ours, "an example uses the action"
    if example in PROVIDER_EXAMPLES:
        assert [s["with"]["provider"] for _, s in ours] == [example, example]
    for action, step in ours:
        assert set(step["with"]) <= declared[action], step["with"]
