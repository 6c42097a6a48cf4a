# ruff: noqa: E501 -- the attack tables keep one case per line (`# fmt: skip`)
"""ID tokens that verify but belong to a job the repository admins' policy does not
cover: another repository, the same name under another id (a renamed or re-created
repository), another branch, tag, event or environment. Each is 400
``unauthorized_client`` with the policy's reason, and nothing is issued."""

from __future__ import annotations

from typing import Any

import pytest

from support.adversary import StoreCounts, last_audit

from .conftest import App

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"

CASES = [
    # (claims, connector, scope, audit reason)
    pytest.param({"repository": "octo-org/other-repo", "repository_id": "690009999"}, "contacts", "contacts.read", "no_policy", id="other-repository"),
    pytest.param({"repository": "evil/octo-repo", "repository_owner": "evil", "repository_owner_id": "666"}, "contacts", "contacts.read", "no_policy", id="same-name-other-owner"),
    pytest.param({"repository_id": "690009999"}, "contacts", "contacts.read", "repository_mismatch", id="renamed-same-name-other-id"),
    pytest.param({"ref": "refs/heads/dev"}, "contacts", "contacts.read", "conditions_not_met", id="other-branch"),
    pytest.param({"ref": "refs/heads/main-evil"}, "contacts", "contacts.read", "conditions_not_met", id="branch-prefix"),
    pytest.param({"ref": "refs/tags/refs/heads/main", "ref_type": "tag"}, "contacts", "contacts.read", "conditions_not_met", id="tag-named-like-main"),
    pytest.param({"ref": "refs/pull/1/merge", "event_name": "pull_request"}, "contacts", "contacts.read", "conditions_not_met", id="pull-request"),
    pytest.param({"event_name": "pull_request_target"}, "contacts", "contacts.read", "conditions_not_met", id="pull-request-target-on-main"),
    pytest.param({"environment": "staging"}, "vault", "ftp.read", "conditions_not_met", id="other-environment"),
    pytest.param({"environment": None}, "vault", "ftp.read", "conditions_not_met", id="no-environment"),
    pytest.param({"environment": "production "}, "vault", "ftp.read", "conditions_not_met", id="environment-trailing-space"),
    pytest.param({"environment": "pr\u043eduction"}, "vault", "ftp.read", "conditions_not_met", id="environment-cyrillic-o"),
]  # fmt: skip


def _post(app: App, claims: dict[str, Any], connector: str, scope: str) -> tuple[int, Any]:
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": app.process.id_token(**claims),
        "subject_token_type": ID_TOKEN_TYPE,
        "resource": connector,
        "scope": scope,
    }
    response = app.client.post("/token", data=form)
    return response.status_code, response.json()


@pytest.mark.parametrize(("claims", "connector", "scope", "reason"), CASES)
def test_a_job_the_policy_does_not_cover_gets_nothing(
    app: App, claims: dict[str, Any], connector: str, scope: str, reason: str
) -> None:
    before = StoreCounts.of(app.process.db_path)
    status, body = _post(app, claims, connector, scope)
    after = StoreCounts.of(app.process.db_path)
    assert (status, body["error"]) == (400, "unauthorized_client"), body
    assert "access_token" not in body
    assert (after.tokens, after.denied) == (before.tokens, before.denied + 1)
    audited = last_audit(app.process.db_path)
    assert (audited["decision"], audited["reason"]) == ("denied", reason)


@pytest.mark.parametrize(
    ("claims", "connector", "scope"),
    [
        pytest.param({}, "contacts", "contacts.read", id="main"),
        pytest.param({"environment": "production"}, "vault", "ftp.read", id="production"),
    ],
)
def test_the_job_the_policy_covers_is_issued_its_token(
    app: App, claims: dict[str, Any], connector: str, scope: str
) -> None:
    """The control: the cases above differ from these in one claim."""
    status, body = _post(app, claims, connector, scope)
    assert status == 200, body
    assert body["scope"] == scope
