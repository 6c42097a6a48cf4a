"""`make demo` runs the whole product and says what it showed."""

from __future__ import annotations

import pytest

from support import demo


def test_the_demo_connects_runs_three_jobs_through_refreshes_and_revokes(
    act_binary: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main() == 0

    out = capsys.readouterr().out
    assert "connected connector crm" in out
    assert out.count(f"answered {demo.CALLS} of {demo.CALLS} calls with 200") == demo.JOBS
    assert "after revoke the broker answered 401: the token is refused" in out
    assert "token (masked by the runner): ***" in out
    assert "audit chain intact" in out
    assert demo.ACT_DOCKER_NOISE not in out  # the README promises no Docker
    assert out.count(" policy_allowed ") == demo.JOBS  # issued, in the audit trail
    assert out.count(" revoke_endpoint ") == demo.JOBS
    assert "ok   requests sent with a stale access token: 0" in out
    assert "ok   reused (invalidated) refresh tokens: 0" in out
    assert " refreshed " in out  # the 5 s access tokens expired during the 12 s jobs
    for step in demo.EXPECTED_STEPS.values():
        assert f"ok   {step} (all {demo.JOBS} jobs)" in out
