"""The act harness itself: a real workflow, the fake issuer, masking."""

from __future__ import annotations

import json

from support.act import action_refs
from support.oidc_issuer import FakeOidcIssuer

from .conftest import RunAct

FETCH_AND_MASK = r"""
on: push
permissions: { id-token: write }
jobs:
  smoke:
    runs-on: ubuntu-latest
    steps:
      - id: fetch
        shell: bash
        run: |
          token=$(python3 -I -c '
          import json, os, urllib.request
          url = os.environ["ACTIONS_ID_TOKEN_REQUEST_URL"] + "&audience=smoke"
          auth = {"Authorization": "bearer " + os.environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]}
          with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=5) as r:
              print(json.load(r)["value"])
          ')
          echo "::add-mask::$token"
          echo "id-token=$token" >> "$GITHUB_OUTPUT"
          echo "length=${#token}" >> "$GITHUB_OUTPUT"
      - id: use
        shell: bash
        env: { ID_TOKEN: "${{ steps.fetch.outputs.id-token }}" }
        run: echo "the next step sees $ID_TOKEN in repository $GITHUB_REPOSITORY"
"""


def test_a_step_fetches_an_id_token_and_the_next_sees_it_masked(
    run_act: RunAct, oidc_issuer: FakeOidcIssuer
) -> None:
    run = run_act(FETCH_AND_MASK, issuer=oidc_issuer)

    assert run.returncode == 0, run.log
    assert run.job_result == "success"
    assert [s.outcome for s in run.steps.values()] == ["success", "success"]
    assert len(oidc_issuer.issued) == 1
    token = oidc_issuer.issued[0]
    # The harness reports the real output, and the job log never shows it.
    assert run.steps["fetch"].outputs["id-token"] == token
    assert run.steps["fetch"].outputs["length"] == str(len(token))
    assert token not in run.log
    assert token.split(".")[1] not in run.log
    assert "the next step sees *** in repository octo-org/octo-repo" in run.log
    # The token is the issuer's, for the audience the step asked for.
    payload = json.loads(_b64(token.split(".")[1]))
    assert payload["aud"] == "smoke"
    assert payload["repository"] == "octo-org/octo-repo"


def test_a_failing_step_is_reported_as_failure(run_act: RunAct) -> None:
    workflow = """
on: push
jobs:
  fail:
    runs-on: ubuntu-latest
    steps:
      - id: ok
        run: echo fine
      - id: broken
        run: exit 3
      - id: after
        run: echo never
"""
    run = run_act(workflow)

    assert run.returncode != 0
    assert run.job_result == "failure"
    assert run.steps["ok"].outcome == "success"
    assert run.steps["broken"].outcome == "failure"
    assert run.steps["after"].outcome == "skipped"


def test_a_job_without_id_token_permission_has_no_runner_oidc_variables(
    run_act: RunAct,
) -> None:
    workflow = """
on: push
jobs:
  plain:
    runs-on: ubuntu-latest
    steps:
      - id: probe
        shell: bash
        run: echo "url=${ACTIONS_ID_TOKEN_REQUEST_URL:-unset}" >> "$GITHUB_OUTPUT"
"""
    run = run_act(workflow)

    assert run.steps["probe"].outputs["url"] == "unset"


def _b64(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_every_ref_of_the_action_a_workflow_names_is_mapped_and_v1_always() -> None:
    workflow = """
      - uses: owner/jobtoken@f2073383ec7573775e15ff88496af56063a77743 # v1
      - uses: "owner/jobtoken/revoke@f2073383ec7573775e15ff88496af56063a77743"
      - {"uses": "owner/jobtoken@v2"}
      - uses: other/jobtoken@v3
      - uses: owner/jobtokens@v4
"""
    assert action_refs(workflow) == ["v1", "f2073383ec7573775e15ff88496af56063a77743", "v2"]


def test_a_workflow_pinned_by_commit_sha_runs_the_working_tree(run_act: RunAct) -> None:
    sha = "f2073383ec7573775e15ff88496af56063a77743"
    workflow = f"""
on: push
jobs:
  pinned:
    runs-on: ubuntu-latest
    steps:
      - id: revoke
        uses: owner/jobtoken/revoke@{sha} # v1
        with: {{ broker-url: "https://tokens.example.com" }}
"""
    run = run_act(workflow)

    assert run.returncode == 0, run.log
    assert run.steps["revoke"].outcome == "success"
