"""`make demo` runs the whole product and says what it showed."""

from __future__ import annotations

import pytest

from support import demo


def test_the_demo_exchanges_calls_revokes_and_is_refused(
    act_binary: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main() == 0

    out = capsys.readouterr().out
    assert "contacts API answered 200: 3 contacts" in out
    assert "after revoke the broker answered 401: the token is refused" in out
    assert "token (masked by the runner): ***" in out
    assert "audit chain intact: 2 record(s)" in out
    assert "issued" in out
    assert "revoked" in out
    for step in demo.EXPECTED_STEPS.values():
        assert f"ok   {step}" in out
