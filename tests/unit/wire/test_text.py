"""Untrusted text made safe to print: nothing in it can start a workflow command."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from jobtoken.wire.text import neutralize

# A line the runner would take for a workflow command: `::name ...::` after
# leading whitespace, or the legacy `##[name ...]` anywhere in the line.
COMMAND_LINE = re.compile(r"^\s*::[A-Za-z-]+|##\[")


@given(st.text(max_size=300))
def test_neutralized_text_never_contains_a_workflow_command(text: str) -> None:
    safe = neutralize(text)

    for line in safe.splitlines() or [""]:
        assert not COMMAND_LINE.search(line)
    assert "\n" not in safe
    assert "\r" not in safe
    assert "::" not in safe
    assert len(safe) <= 300


def test_neutralize_keeps_readable_text_and_breaks_commands() -> None:
    assert neutralize("policy main.yml: no rule") == "policy main.yml: no rule"
    assert (
        neutralize("x ::stop-commands::tok\n::error::y") == "x : :stop-commands: :tok : :error: :y"
    )
    assert neutralize("a ##[set-output name=x]y") == "a # #[set-output name=x]y"
    assert neutralize(":::") == ": : :"
    assert neutralize("\u202eevil\u2028line") == " evil line"
    assert neutralize("x" * 50, limit=10) == "x" * 9 + "…"
