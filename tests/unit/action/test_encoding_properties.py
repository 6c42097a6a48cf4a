"""Properties of what the exchange action writes, read back the way the runner reads it.

The whole exchange runs (``run_exchange``: inputs, masking, checks, outputs, summary)
with the broker provider's response parser fed a generated answer, so the token text
is anything at all: newlines, ``%``, ``::``, ``##[``, Unicode separators, heredoc
delimiters. ``runner_model`` reads stdout, ``GITHUB_OUTPUT``, ``GITHUB_ENV`` and the
step summary as the runner does. For every token:

1. every stdout line is well formed: a command is one the action means to write, and
   each ``add-mask`` carries a non-blank value;
2. no part of the token (the token, each piece the runner could print on its own, any
   8 characters of it) is ever printed unmasked, with only the masks registered
   *before* that line (the order the runner applies them), and the step summary, scrubbed
   with every mask, shows none either, and is a well-formed two-column table;
3. when the token passes the checks, the ``token`` output (and ``export-env``) read back
   exactly, with the other outputs; when it fails them, no output is written at all.

``make test`` runs the bounded hypothesis profile; ``make fuzz`` the long one
(tests/conftest.py).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import assume, event, example, given
from hypothesis import strategies as st

from jobtoken.action import exchange as exchange_module
from jobtoken.action.exchange import REVOKE_HANDLE_PREFIX, run_exchange
from jobtoken.action.provider import IssuedToken, Provider
from jobtoken.action.providers.broker import ACCESS_TOKEN_TYPE, parse_token_response
from jobtoken.action.revoke import decode_revoke_handle
from jobtoken.action.runtime import markdown_cell

from .runner_model import RunnerView, mask_line, parse_file_command, read_stdout

NOW = 1_800_000_000.0
#: os.urandom's first answer while a test runs: its delimiter is planted in some tokens
PLANTED = bytes(range(16))
PLANTED_DELIMITER = f"ghadelimiter_{PLANTED.hex()}"
#: the commands the action writes
COMMANDS = {"add-mask", "error", "warning", "notice", "debug", "group", "endgroup"}
PART = 8
#: what separates the pieces the runner might print on their own (docs/action.md)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")

#: printable ASCII without space: what the checks let through to the outputs
passing = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8)
#: a JWT's shape (what the jobtoken broker mints): also a valid token id
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
jwt_like = st.lists(st.text(alphabet=_B64URL, min_size=2, max_size=20), min_size=3, max_size=3).map(
    ".".join
)
#: what a token id may be made of (a broker may echo such a token as its token_id)
id_like = st.text(alphabet="Ab0.:-", min_size=8, max_size=30)
tokens = st.one_of(
    st.text(max_size=60),  # anything: most fail the shape check
    passing,
    jwt_like,
    id_like,
    st.builds(
        lambda a, b: a + PLANTED_DELIMITER + b,
        st.text(alphabet="%:#[]<>a\n\r\u2028", max_size=6),
        st.text(alphabet="%:#[]<>b\n", max_size=6),
    ),
    st.lists(
        st.sampled_from(
            [
                "%",
                "%25",
                "%0A",
                "::",
                "::add-mask::",
                "##[",
                "\n",
                "\r",
                "\u2028",
                "|",
                "`",
                "\\",
                "<<",
                "EOF",
                "ghadelimiter_",
                "é",
                "\ufeff",
                " ",
                "abcdefgh",
                "=",
                "***",
            ]
        ),
        min_size=1,
        max_size=12,
    ).map("".join),
)


def pieces(token: str) -> list[str]:
    return [piece for piece in _UNSAFE.split(token) if piece.strip()]


def parts(token: str) -> set[str]:
    """Every stretch of `PART` characters of the token, or the token if shorter."""
    if len(token) <= PART:
        return {token} if token.strip() else set()
    return {token[i : i + PART] for i in range(len(token) - PART + 1)}


def unmasked(text: str, spans: list[tuple[int, int]], needle: str) -> bool:
    """Whether `needle` occurs in `text` other than inside a masked span."""
    start = text.find(needle)
    while start >= 0:
        end = start + len(needle)
        if not any(s <= start and end <= e for s, e in spans):
            return True
        start = text.find(needle, start + 1)
    return False


class Scenario:
    """One exchange, its inputs and what the fake provider answers."""

    def __init__(self, token: str, answer: dict[str, Any], lease: str | None) -> None:
        self.token = token
        self.answer = answer
        self.lease = lease

    def __repr__(self) -> str:
        return f"Scenario({self.token!r}, {self.answer!r}, {self.lease!r})"

    def issued(self) -> IssuedToken:
        parsed = parse_token_response(self.answer)
        if self.lease is None:
            return parsed
        return IssuedToken(
            access_token=parsed.access_token,
            token_type=parsed.token_type,
            expires_in=parsed.expires_in,
            scopes=parsed.scopes,
            token_id=parsed.token_id,
            issued_token_type=parsed.issued_token_type,
            revoke_state={"lease": self.lease},
        )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    token = draw(tokens)
    token_id = draw(st.sampled_from(["id", "same", "none", "odd", "same"]))
    answer: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "expires_in": draw(st.sampled_from([600] * 6 + [900, 30, 0, -1, 10**9, "600", None])),
        "scope": draw(st.sampled_from(["crm.read", "crm.read crm.write", None] * 3 + ["other"])),
    }
    if token_id == "same":
        answer["token_id"] = token
    elif token_id == "id":
        answer["token_id"] = "tok-" + draw(st.text(alphabet="0123456789abcdef", min_size=8))
    elif token_id == "odd":
        answer["token_id"] = draw(st.text(max_size=20))
    answer = {k: v for k, v in answer.items() if v is not None}
    lease = draw(st.none() | tokens | st.just(token))
    return Scenario(token, answer, lease)


_REAL_URANDOM = os.urandom


def first_urandom_planted() -> Iterator[bytes]:
    yield PLANTED
    while True:
        yield _REAL_URANDOM(16)


def run(scenario: Scenario, directory: Path) -> tuple[int, RunnerView, dict[str, str]]:
    files = {
        name: directory / name.lower()
        for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")
    }
    for path in files.values():
        path.write_text("")
    env = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/token",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-request-token",
        "INPUT_BROKER_URL": "https://broker.test",
        "INPUT_CONNECTOR": "hubspot",
        "INPUT_SCOPES": "crm.read crm.write",
        "INPUT_TTL": "15m",
        "INPUT_EXPORT_ENV": "HUBSPOT_TOKEN",
        **{name: str(path) for name, path in files.items()},
    }
    provider = Provider(
        name="broker",
        exchange=lambda request: scenario.issued(),
        revoke=lambda request: "revoked",
        token_type="Bearer",
        issued_token_types=frozenset({ACCESS_TOKEN_TYPE}),
    )
    out = io.StringIO()
    randoms = first_urandom_planted()
    with (
        mock.patch.object(exchange_module, "load", return_value=provider),
        mock.patch("os.urandom", side_effect=lambda n: next(randoms)[:n]),
    ):
        code = run_exchange(env, out, clock=lambda: NOW)
    written = {name: path.read_text(encoding="utf-8") for name, path in files.items()}
    return code, read_stdout(out.getvalue()), written


SUMMARY_ROW = re.compile(r"\| ((?:[^|\\\n]|\\.)*) \| ((?:[^|\\\n]|\\.)*) \|")


@given(scenario=scenarios())
@example(scenario=Scenario("abc%0Adef::ghi", {"access_token": "abc%0Adef::ghi"}, None))
@example(scenario=Scenario("a\n \nb\r", {"access_token": "a\n \nb\r"}, None))  # blank piece
@example(scenario=Scenario("\r", {"access_token": "\r"}, None))  # blank once unescaped
@example(  # found here: a token_id that is the token, shown as "0000000: :" unmasked
    scenario=Scenario(
        "0000000::",
        {
            "access_token": "0000000::",
            "token_type": "Bearer",
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "expires_in": 600,
            "scope": "crm.read",
            "token_id": "0000000::",
        },
        None,
    )
)
@example(
    scenario=Scenario(
        f"x{PLANTED_DELIMITER}y",
        {
            "access_token": f"x{PLANTED_DELIMITER}y",
            "token_type": "Bearer",
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "expires_in": 600,
        },
        None,
    )
)
@example(
    scenario=Scenario(
        "a|b`c\\d::e%f",
        {
            "access_token": "a|b`c\\d::e%f",
            "token_type": "Bearer",
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "expires_in": 600,
            "token_id": "a|b`c\\d::e%f",
        },
        "a|b`c\\d::e%f",
    )
)
def test_no_token_text_breaks_the_commands_the_files_or_the_mask(scenario: Scenario) -> None:
    token = scenario.token
    public = " ".join(str(v) for k, v in scenario.answer.items() if k != "access_token")
    assume(not any(part in public for part in parts(token)) or public.count(token))
    with tempfile.TemporaryDirectory() as tmp:
        code, view, written = run(scenario, Path(tmp))

    event("written" if code == 0 else "rejected")

    # 1. every command is one the action writes; no mask is blank
    assert {command.name for command in view.commands} <= COMMANDS
    assert view.blank_masks == 0
    if token.strip():
        assert token in view.secrets

    # 2. nothing of the token printed unmasked, with the masks known at that line
    secrets_needed = {text for text in (token, *pieces(token)) if text.strip()}
    for text, spans in view.shown:
        for needle in secrets_needed | parts(token):
            assert not unmasked(text, spans, needle), (needle, text)
    summary = written["GITHUB_STEP_SUMMARY"]
    for line in summary.split("\n"):
        printed, spans = mask_line(line, view.secrets)
        for needle in secrets_needed | parts(token):
            assert not unmasked(line, spans, needle), (needle, printed)
        if line.startswith("| ") and line not in ("| | |",):
            assert SUMMARY_ROW.fullmatch(line), line

    # 3. outputs: exactly the token when it passed the checks, nothing at all otherwise
    outputs = parse_file_command(written["GITHUB_OUTPUT"])
    exported = parse_file_command(written["GITHUB_ENV"])
    if code != 0:
        assert outputs == {}
        assert exported == {}
        assert summary == ""
        return
    assert outputs["token"] == token
    assert exported == {"HUBSPOT_TOKEN": token}
    assert set(outputs) == {"token", "token-id", "expires-at", "scopes", "revoke-handle"}
    assert re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)?", outputs["expires-at"])
    if scenario.lease is not None:
        assert outputs["revoke-handle"].startswith(REVOKE_HANDLE_PREFIX)
        assert outputs["revoke-handle"] in view.secrets
        assert decode_revoke_handle(outputs["revoke-handle"], "broker") == {"lease": scenario.lease}
    assert summary.startswith("### jobtoken\n")


def read_cell(cell: str) -> str:
    """A markdown table cell's text: `\\x` is `x`."""
    return re.sub(r"\\(.)", r"\1", cell)


@given(text=st.text(max_size=80) | st.text(alphabet="|\\`:#[\n\r\u2028 a", max_size=20))
@example(text="a|b\\|c`d")
def test_any_text_stays_one_summary_cell(text: str) -> None:
    """What the summary's rows rest on, for any value (the run above only reaches it with
    values the checks let through)."""
    row = f"| label | {markdown_cell(text)} |"
    match = SUMMARY_ROW.fullmatch(row)
    assert match, row
    shown = read_cell(match.group(2))
    assert "\n" not in shown
    assert "\r" not in shown
    assert "::" not in shown
    assert "`" not in shown
