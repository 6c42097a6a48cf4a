"""How the GitHub runner reads what a step writes, for the action's property tests.

Written from the runner's behaviour (actions/runner, ``ActionCommand.TryParseV2``,
``SetOutputFileCommand``/``EnvFileKeyValuePairs``, the secret masker and the step
summary's scrubbing), not from the action's code:

- stdout is read line by line, a line ending at ``\\n``, ``\\r`` or ``\\r\\n``;
- a line whose text, after leading whitespace, starts with ``::`` is a command
  ``::name[ key=value,…]::data``; data is unescaped ``%0D`` → CR, ``%0A`` → LF,
  ``%25`` → ``%`` in that order, and property values also ``%3A`` → ``:``,
  ``%2C`` → ``,``; ``add-mask`` registers its data as a secret from then on
  (a blank one is refused with a warning);
- every line the runner prints has each registered secret replaced with ``***``;
- ``GITHUB_OUTPUT``/``GITHUB_ENV`` are read as ``NAME=VALUE`` lines or
  ``NAME<<DELIMITER`` heredocs, lines split at ``\\n`` (Linux runners), the value
  being everything up to the line that is exactly the delimiter;
- the step summary is scrubbed line by line with the same masker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Command", "RunnerView", "mask_line", "parse_file_command", "read_stdout"]

_LINES = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Command:
    name: str
    properties: dict[str, str]
    data: str


def _unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(text: str) -> str:
    return (
        text.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
    )


def parse_command(line: str) -> Command | None:
    """The command on a stdout line, or None for a plain line."""
    text = line.lstrip()
    if not text.startswith("::"):
        return None
    end = text.find("::", 2)
    if end < 0:
        return None
    info = text[2:end]
    name, _, props = info.partition(" ")
    properties: dict[str, str] = {}
    for pair in props.split(",") if props else []:
        key, sep, value = pair.partition("=")
        if sep and key:
            properties[key] = _unescape_property(value)
    return Command(name, properties, _unescape_data(text[end + 2 :]))


def mask_line(line: str, secrets: Iterable[str]) -> tuple[str, list[tuple[int, int]]]:
    """The line as printed (each secret → ***), and the masked spans of the original."""
    spans: list[tuple[int, int]] = []
    for secret in secrets:
        start = line.find(secret)
        while start >= 0:
            spans.append((start, start + len(secret)))
            start = line.find(secret, start + 1)
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    printed, at = [], 0
    for start, end in merged:
        printed.append(line[at:start] + "***")
        at = end
    printed.append(line[at:])
    return "".join(printed), [(start, end) for start, end in merged]


@dataclass
class RunnerView:
    """What the runner made of the step's stdout."""

    commands: list[Command] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    #: (text shown, its spans masked by the secrets registered before it), in order
    shown: list[tuple[str, list[tuple[int, int]]]] = field(default_factory=list)
    blank_masks: int = 0


def read_stdout(text: str) -> RunnerView:
    view = RunnerView()
    lines = _LINES.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        command = parse_command(line)
        if command is not None:
            view.commands.append(command)
            if command.name == "add-mask":
                if command.data.strip():
                    view.secrets.append(command.data)
                else:
                    view.blank_masks += 1
                continue
            # a command's message and title are printed (annotations, debug, group)
            shown = [command.data, *command.properties.values()]
        else:
            shown = [line]
        for part in shown:
            view.shown.append((part, mask_line(part, view.secrets)[1]))
    return view


def parse_file_command(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV as the runner reads it; ValueError when it would fail."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            name, value = line.split("=", 1)
            values[name] = value
            continue
        if heredoc < 0:
            raise ValueError(f"invalid format {line!r}")
        name, delimiter = line.split("<<", 1)
        if not name or not delimiter:
            raise ValueError(f"invalid heredoc {line!r}")
        try:
            end = lines.index(delimiter, index)
        except ValueError:
            raise ValueError(f"matching delimiter not found {delimiter!r}") from None
        values[name] = "\n".join(lines[index:end])
        index = end + 1
    return values
