from __future__ import annotations

import json

import pytest

from jobtoken.broker.http.webhook import _completed_job, signature_for


def test_the_signature_matches_githubs_documented_example() -> None:
    # https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    assert signature_for(b"It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def _payload(**changes: object) -> bytes:
    body: dict[str, object] = {
        "action": "completed",
        "repository": {"id": 11},
        "workflow_job": {"id": 44, "run_id": 22, "run_attempt": 3},
    }
    body.update(changes)
    return json.dumps(body).encode()


def test_a_completed_job_names_the_job_to_revoke() -> None:
    assert _completed_job(_payload()) == {
        "repository_id": "11",
        "run_id": "22",
        "run_attempt": "3",
        "check_run_id": "44",
    }


@pytest.mark.parametrize(
    "payload",
    [
        _payload(action="in_progress"),
        _payload(repository={"id": "11"}),
        _payload(workflow_job={"id": 44, "run_id": True, "run_attempt": 3}),
        _payload(workflow_job={"id": 44, "run_id": 22}),
        b'{"action": "completed", "action": "completed"}',
        b"[]",
        b"\xff",
    ],
)
def test_anything_else_is_ignored(payload: bytes) -> None:
    assert _completed_job(payload) is None


def test_the_job_is_named_by_the_last_segment_of_check_run_url() -> None:
    job = {
        "id": 44,
        "run_id": 22,
        "run_attempt": 3,
        "check_run_url": "https://api.github.com/repos/o/r/check-runs/45",
    }
    assert _completed_job(_payload(workflow_job=job)) == {
        "repository_id": "11",
        "run_id": "22",
        "run_attempt": "3",
        "check_run_id": "45",
    }


def test_a_check_run_url_without_a_number_is_ignored() -> None:
    job = {"id": 44, "run_id": 22, "run_attempt": 3, "check_run_url": "https://x/check-runs/4x"}
    assert _completed_job(_payload(workflow_job=job)) is None
