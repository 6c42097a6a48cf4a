"""A repository policy file that does not parse, through the real broker process: the
job is told what to fix in a text an OAuth error can carry, and the broker's log says
which file and line, never the file's content."""

from __future__ import annotations

from pathlib import Path

from support.broker_process import POLICY, serving_broker

#: a rule name that must never reach the log (the file is the repository's, not ours)
MARKER = "rule-name-only-in-the-file"


def test_a_tab_in_the_policy_is_named_to_the_job_and_logged_by_file_and_line(
    tmp_path: Path,
) -> None:
    with serving_broker(tmp_path) as broker:
        tabbed = POLICY.replace("    - name: read-from-main", f"\t- name: {MARKER}")
        assert "\t" in tabbed
        broker.policy_path.write_text(tabbed)
        line = tabbed.splitlines().index(f"\t- name: {MARKER}") + 1
        response = broker.exchange()
        log = broker.log_path.read_text()
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "unauthorized_client"
    description = body["error_description"]
    assert f"octo-org/octo-repo.yml:{line}: not valid YAML: a tab character" in description
    assert "indent with spaces" in description
    assert "?t" not in description
    assert "policy file invalid" in log
    assert f'"at": "octo-org/octo-repo.yml:{line}"' in log
    assert MARKER not in log
