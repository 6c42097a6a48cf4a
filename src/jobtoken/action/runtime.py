"""The GitHub Actions runtime, as seen from a step: commands on stdout and file commands.

Public API:

- `Runtime(env, out)` — `mask`, `error`/`warning`/`notice`/`debug`, `set_outputs`,
  `save_state`, `export_env`, `append_summary`, `group`.

Imports are kept to what every run needs (no `secrets`, `contextlib`,
`typing` at run time): the interpreter start dominates the action's cost.
Untrusted text (a broker's message, a claim) goes through
`jobtoken.wire.text.neutralize` before it is printed.
- `escape_data`, `escape_property` — the runner's own escaping of a command's
  message and properties (as in @actions/core).
- `file_command_entry(name, value)` — one `name<<DELIMITER` block with a random
  delimiter that is checked against the value.

Ordering rule the callers keep: `mask(secret)` is written before any other line
that could contain the secret (the runner only hides what it was told about).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from jobtoken.wire.text import UNSAFE_CODE_POINTS, neutralize

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs ≈5 ms per run
if TYPE_CHECKING:
    from typing import TextIO

__all__ = [
    "Runtime",
    "escape_data",
    "escape_property",
    "file_command_entry",
    "markdown_cell",
    "masked_forms",
]

#: every character `neutralize` turns into a space: a token is masked piece by piece
#: between them, so that no line the runner prints can show part of it unmasked
_UNSAFE_TO_NEWLINE = dict.fromkeys(UNSAFE_CODE_POINTS, "\n")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\Z")


def escape_data(text: str) -> str:
    """Escape a workflow command's message (as @actions/core does)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (as @actions/core does)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def file_command_entry(name: str, value: str) -> str:
    """`name<<D\\nvalue\\nD\\n` for GITHUB_OUTPUT/GITHUB_STATE/GITHUB_ENV, D random."""
    if not _NAME.match(name):
        raise ValueError(f"invalid file command name {name!r}")
    for _ in range(5):
        delimiter = f"ghadelimiter_{os.urandom(16).hex()}"
        if delimiter not in value:
            return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"
    raise ValueError(f"could not find a delimiter for {name}")  # pragma: no cover


def masked_forms(secret: str) -> list[str]:
    """The forms of `secret` to mask, in the order they must be written.

    A value that spans lines (or holds any other control or line-separator
    character) is masked piece by piece first, each piece a command with no
    escape in it, and only then as a whole and URL-encoded (what a form body
    carries): a runner that splits the whole-value command differently than
    GitHub's, and prints it, then shows only pieces it already hides (the
    lesson of CVE-2021-32074, hashicorp/vault-action).

    A blank form (only whitespace once the runner unescapes it) is left out: the
    runner refuses it with a warning ("Can't add secret mask for empty string"),
    and there is nothing in it to hide.
    """
    pieces = [p for p in secret.translate(_UNSAFE_TO_NEWLINE).split("\n") if p.strip()]
    forms = [] if pieces == [secret] else list(dict.fromkeys(pieces))
    if not secret.strip():
        return forms
    forms.append(secret)
    encoded = quote(secret, safe="")
    if encoded != secret:
        forms.append(encoded)
    return forms


class Runtime:
    """Where the step writes: stdout commands and the runner's file commands.

    `env` is the process environment (GITHUB_OUTPUT, GITHUB_STATE, GITHUB_ENV,
    GITHUB_STEP_SUMMARY name the files); `out` is the step's stdout.
    """

    def __init__(self, env: Mapping[str, str], out: TextIO | None = None) -> None:
        self.env = env
        self.out = out if out is not None else sys.stdout

    # -- stdout commands -------------------------------------------------

    def _command(
        self, command: str, message: str, properties: Mapping[str, str] | None = None
    ) -> None:
        props = ",".join(f"{k}={escape_property(v)}" for k, v in (properties or {}).items() if v)
        head = f"::{command} {props}" if props else f"::{command}"
        self.out.write(f"{head}::{escape_data(message)}\n")
        self.out.flush()

    def mask(self, secret: str) -> None:
        """Tell the runner to hide `secret` (and its derived forms) from the log."""
        for form in masked_forms(secret):
            self._command("add-mask", form)

    def error(self, message: str, title: str = "") -> None:
        self._command("error", message, {"title": title})

    def warning(self, message: str, title: str = "") -> None:
        self._command("warning", message, {"title": title})

    def notice(self, message: str, title: str = "") -> None:
        self._command("notice", message, {"title": title})

    def debug(self, message: str) -> None:
        self._command("debug", message)

    def info(self, message: str) -> None:
        """A plain log line; `message` must already be neutralized if untrusted."""
        self.out.write(neutralize(message, limit=4000) + "\n")
        self.out.flush()

    def group(self, title: str, lines: Iterable[str]) -> None:
        """A collapsed group of plain lines (each neutralized)."""
        self.out.write(f"::group::{escape_data(neutralize(title))}\n")
        for line in lines:
            self.out.write(neutralize(line, limit=4000) + "\n")
        self.out.write("::endgroup::\n")
        self.out.flush()

    # -- file commands ---------------------------------------------------

    def _append(self, variable: str, text: str) -> None:
        path = self.env.get(variable)
        if not path:
            raise RuntimeError(
                f"{variable} is not set: this must run as a step of a GitHub Actions job"
            )
        with open(path, "a", encoding="utf-8", newline="\n") as handle:
            handle.write(text)

    def set_outputs(self, outputs: Iterable[tuple[str, str]]) -> None:
        """Write every output at once (one append to GITHUB_OUTPUT)."""
        self._append("GITHUB_OUTPUT", "".join(file_command_entry(n, v) for n, v in outputs))

    def save_state(self, name: str, value: str) -> None:
        self._append("GITHUB_STATE", file_command_entry(name, value))

    def export_env(self, name: str, value: str) -> None:
        self._append("GITHUB_ENV", file_command_entry(name, value))

    def append_summary(self, markdown: str) -> None:
        """Append to the job summary; a runner without one (act) is not an error."""
        if self.env.get("GITHUB_STEP_SUMMARY"):
            self._append("GITHUB_STEP_SUMMARY", markdown)


def markdown_cell(text: str) -> str:
    """Untrusted text as one markdown table cell."""
    return neutralize(text, limit=200).replace("\\", "\\\\").replace("|", "\\|").replace("`", "'")
