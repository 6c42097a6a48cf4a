"""Workflow commands and file commands: what the runner sees from the action."""

from __future__ import annotations

import io
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobtoken.action.runtime import (
    Runtime,
    escape_data,
    file_command_entry,
    markdown_cell,
    masked_forms,
)

# A line the runner would take for a workflow command: `::name ...::` after
# leading whitespace, or the legacy `##[name ...]` anywhere in the line.
COMMAND_LINE = re.compile(r"^\s*::[A-Za-z-]+|##\[")


def parse_file_commands(text: str) -> dict[str, str]:
    """How the runner reads GITHUB_OUTPUT: `name<<DELIM` ... `DELIM` blocks."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines) and lines[index]:
        name, _, delimiter = lines[index].partition("<<")
        end = lines.index(delimiter, index + 1)
        values[name] = "\n".join(lines[index + 1 : end])
        index = end + 1
    return values


def unescape_data(text: str) -> str:
    return text.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")


@given(st.text(min_size=1, max_size=200))
def test_a_mask_command_carries_the_exact_secret_on_one_line(secret: str) -> None:
    out = io.StringIO()
    Runtime({}, out).mask(secret)

    lines = out.getvalue().split("\n")[:-1]  # the runner reads lines split at \n (and \r)
    assert all(line.startswith("::add-mask::") and "\r" not in line for line in lines)
    masked = [unescape_data(line[len("::add-mask::") :]) for line in lines]
    assert set(masked) == set(masked_forms(secret))
    assert all(value.strip() for value in masked), "the runner refuses a blank mask"
    assert (secret in masked) == bool(secret.strip())


def test_a_multi_line_secret_is_masked_piece_by_piece_before_any_escaped_command() -> None:
    """CVE-2021-32074: a runner that mis-splits the whole-value command shows only masked pieces."""
    out = io.StringIO()
    Runtime({}, out).mask("first-line\r\nsecond\x0bthird\u2028fourth")

    assert out.getvalue().split("\n")[:-1] == [
        "::add-mask::first-line",
        "::add-mask::second",
        "::add-mask::third",
        "::add-mask::fourth",
        "::add-mask::first-line%0D%0Asecond\x0bthird\u2028fourth",
        "::add-mask::first-line%250D%250Asecond%250Bthird%25E2%2580%25A8fourth",
    ]


_LINE_BREAKING = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


@given(st.text(min_size=1, max_size=200))
def test_every_piece_is_masked_before_the_whole_value(secret: str) -> None:
    """The lines before the whole-value command each mask one piece with no line break in it."""
    out = io.StringIO()
    Runtime({}, out).mask(secret)

    masked = [
        unescape_data(line[len("::add-mask::") :]) for line in out.getvalue().split("\n")[:-1]
    ]
    whole_at = masked.index(secret) if secret.strip() else len(masked)
    pieces = masked[:whole_at]
    chunks = [chunk for chunk in _LINE_BREAKING.split(secret) if chunk.strip()]
    if chunks != [secret]:
        assert set(pieces) == set(chunks)
    assert not any(_LINE_BREAKING.search(piece) for piece in pieces)


def test_masked_forms_include_the_url_encoded_form_and_each_line() -> None:
    assert masked_forms("abc") == ["abc"]
    assert masked_forms("a+b/c=") == ["a+b/c=", quote("a+b/c=", safe="")]
    assert masked_forms("first-line\nsecond") == [
        "first-line",
        "second",
        "first-line\nsecond",
        "first-line%0Asecond",
    ]


@given(st.text(max_size=500), st.text(max_size=100))
def test_random_values_never_break_the_output_file(token: str, other: str) -> None:
    """Whatever a value holds (newlines, delimiters, `<<`), each output reads back exactly."""
    entries = file_command_entry("token", token) + file_command_entry("token-id", other)

    assert parse_file_commands(entries) == {"token": token, "token-id": other}


def test_the_delimiter_is_random_and_never_inside_the_value() -> None:
    first = file_command_entry("token", "v").split("\n")[0]
    second = file_command_entry("token", "v").split("\n")[0]
    assert first != second
    assert re.fullmatch(r"token<<ghadelimiter_[0-9a-f]{32}", first)


def test_an_invalid_output_name_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid file command name"):
        file_command_entry("bad\nname", "v")


def test_set_outputs_appends_all_outputs_to_github_output(tmp_path: Path) -> None:
    output = tmp_path / "output"
    output.write_text("earlier<<EOF\nx\nEOF\n")
    Runtime({"GITHUB_OUTPUT": str(output)}).set_outputs([("token", "t0k"), ("scopes", "a b")])

    assert parse_file_commands(output.read_text()) == {
        "earlier": "x",
        "token": "t0k",
        "scopes": "a b",
    }


def test_export_env_and_state_use_their_own_files(tmp_path: Path) -> None:
    env = {"GITHUB_ENV": str(tmp_path / "env"), "GITHUB_STATE": str(tmp_path / "state")}
    runtime = Runtime(env)
    runtime.export_env("HUBSPOT_TOKEN", "t0k")
    runtime.save_state("handle", "h")

    assert parse_file_commands((tmp_path / "env").read_text()) == {"HUBSPOT_TOKEN": "t0k"}
    assert parse_file_commands((tmp_path / "state").read_text()) == {"handle": "h"}


def test_a_missing_file_command_variable_says_where_this_must_run() -> None:
    with pytest.raises(RuntimeError, match="GITHUB_OUTPUT is not set"):
        Runtime({}).set_outputs([("token", "x")])


def test_the_summary_is_skipped_without_a_summary_file_and_appended_with_one(
    tmp_path: Path,
) -> None:
    Runtime({}).append_summary("| a |\n")  # act has no summary: not an error
    summary = tmp_path / "summary"
    Runtime({"GITHUB_STEP_SUMMARY": str(summary)}).append_summary("| a |\n")
    assert summary.read_text() == "| a |\n"


def test_annotations_escape_the_message_and_the_title() -> None:
    out = io.StringIO()
    runtime = Runtime({}, out)
    runtime.error("two\nlines 100%", title="jobtoken: bad, input")
    runtime.warning("w")
    runtime.notice("n")
    runtime.debug("d")

    assert out.getvalue().splitlines() == [
        "::error title=jobtoken%3A bad%2C input::two%0Alines 100%25",
        "::warning::w",
        "::notice::n",
        "::debug::d",
    ]


def test_info_lines_are_neutralized() -> None:
    out = io.StringIO()
    Runtime({}, out).info("claim: ::add-mask::x\nnext")
    assert out.getvalue() == "claim: : :add-mask: :x next\n"


def test_escape_data_round_trips() -> None:
    assert unescape_data(escape_data("a%0A\r\nb")) == "a%0A\r\nb"


def test_markdown_cells_cannot_break_the_table() -> None:
    assert markdown_cell("a|b`c\nd") == "a\\|b'c d"
