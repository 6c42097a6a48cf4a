"""The README and docs/ hold commands that work and links that lead somewhere.

Every line of a fenced ``sh``, ``console`` or ``bash`` block in README.md and
docs/*.md that starts with ``jobtoken `` (after an optional ``$ ``) is parsed
with the real command-line parser (`jobtoken.cli.build_parser`); a line that
starts with ``.venv/bin/python tests/support/dev.py`` (the clone-only helper
script) is parsed with that script's parser. Placeholders such as ``<name>`` or
``FILE`` pass as long as argparse accepts them. Every relative link in those
files must point at a path that exists, and a ``#fragment`` on a link to a
markdown file must name one of its headings (GitHub's anchors).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from jobtoken.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEV_SCRIPT = ROOT / "tests" / "support" / "dev.py"
DEV_PREFIX = ".venv/bin/python tests/support/dev.py"
SHELL_LANGUAGES = frozenset({"sh", "console", "bash"})
#: tokens where the command ends and the shell takes over
SHELL_OPERATORS = frozenset({"|", "||", "&&", ";", "&", "<", ">", ">>", "<<", "<<<"})
_REDIRECTION = re.compile(r"^[0-9]*(?:[<>]|>>)")
_PLACEHOLDER = re.compile(r"^<[^<>\s]+>$")
_FENCE_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?(?P<target>[^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(?P<target>[^\s<>]+)>?")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(?P<text>.*?)\s*#*\s*$")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class DocLine:
    path: Path
    number: int  # 1-based
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.number}"


@dataclass(frozen=True)
class DocCommand:
    """One documented command: `tool` is ``jobtoken`` or ``dev`` (tests/support/dev.py)."""

    line: DocLine
    tool: str
    argv: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.line.where}: {self.line.text}"


@dataclass(frozen=True)
class DocLink:
    line: DocLine
    target: str

    @property
    def id(self) -> str:
        return f"{self.line.where}: {self.target}"


def fenced_blocks(path: Path, text: str) -> Iterator[tuple[str, list[DocLine]]]:
    """(language, lines) of every fenced code block; the fence's indentation is removed."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE_OPEN.match(lines[index])
        index += 1
        if opening is None:
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body: list[DocLine] = []
        while index < len(lines) and not closing.match(lines[index]):
            raw = lines[index]
            stripped = raw[min(indent, len(raw) - len(raw.lstrip())) :]
            body.append(DocLine(path, index + 1, stripped))
            index += 1
        index += 1  # the closing fence
        yield opening["info"].lower(), body


def logical_lines(block: list[DocLine]) -> Iterator[DocLine]:
    """Lines with their backslash continuations joined, numbered by their first line."""
    pending: DocLine | None = None
    for line in block:
        text = line.text.rstrip()
        if pending is not None:
            text = pending.text + " " + text.lstrip()
            line = pending
        if text.endswith("\\"):
            pending = DocLine(line.path, line.number, text[:-1].rstrip())
            continue
        pending = None
        yield DocLine(line.path, line.number, text)
    if pending is not None:
        yield pending


def command_argv(text: str) -> list[str]:
    """The shell words of `text` up to the first operator or redirection, comments dropped."""
    words: list[str] = []
    for word in shlex.split(text, comments=True):
        if word in SHELL_OPERATORS or (_REDIRECTION.match(word) and not _PLACEHOLDER.match(word)):
            break
        words.append(word)
    return words


def commands_in(path: Path) -> list[DocCommand]:
    found: list[DocCommand] = []
    for language, block in fenced_blocks(path, path.read_text(encoding="utf-8")):
        if language not in SHELL_LANGUAGES:
            continue
        for line in logical_lines(block):
            text = line.text.strip()
            text = text[2:] if text.startswith("$ ") else text
            if text.startswith("jobtoken "):
                tool, skip = "jobtoken", 1
            elif text.startswith(DEV_PREFIX + " "):
                tool, skip = "dev", 2
            else:
                continue
            argv = tuple(command_argv(text)[skip:])
            found.append(DocCommand(DocLine(path, line.number, text), tool, argv))
    return found


def prose_lines(path: Path, *, keep_code: bool = False) -> Iterator[DocLine]:
    """The lines outside fenced code blocks, inline code spans removed unless `keep_code`."""
    text = path.read_text(encoding="utf-8")
    in_code = {line.number for _, block in fenced_blocks(path, text) for line in block}
    for number, raw in enumerate(text.splitlines(), start=1):
        if number in in_code or _FENCE_OPEN.match(raw):
            continue
        yield DocLine(path, number, raw if keep_code else _CODE_SPAN.sub("", raw))


def links_in(path: Path) -> list[DocLink]:
    found: list[DocLink] = []
    for line in prose_lines(path):
        targets = [m["target"] for m in _LINK.finditer(line.text)]
        reference = _REFERENCE.match(line.text)
        if reference:
            targets.append(reference["target"])
        found.extend(DocLink(line, target) for target in targets)
    return found


def anchors_of(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens,
    a repeated anchor suffixed -1, -2, …"""
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for line in prose_lines(path.resolve(), keep_code=True):
        heading = _HEADING.match(line.text)
        if heading is None:
            continue
        text = re.sub(r"[*_`]|\[([^\]]*)\]\([^)]*\)", r"\1", heading["text"])
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def load_dev_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("jobtoken_docs_dev_script", DEV_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COMMANDS = [command for path in doc_files() for command in commands_in(path)]
LINKS = [link for path in doc_files() for link in links_in(path)]


def parse(command: DocCommand) -> argparse.Namespace:
    argv = list(command.argv)
    if command.tool == "jobtoken":
        return build_parser(argv).parse_args(argv)
    parser: argparse.ArgumentParser = load_dev_script().build_parser()
    return parser.parse_args(argv)


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_a_documented_command_is_accepted_by_the_real_parser(command: DocCommand) -> None:
    if command.tool == "dev" and not DEV_SCRIPT.exists():
        pytest.skip(f"{DEV_SCRIPT.relative_to(ROOT)} does not exist yet")
    errors = io.StringIO()
    args: argparse.Namespace | None = None
    exit_code: object = None
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            args = parse(command)
    except SystemExit as exc:  # argparse refused the command (or printed --help)
        exit_code = exc.code
    if args is None:
        if exit_code in (0, None):  # --help, --version
            return
        message = errors.getvalue().strip().splitlines()
        pytest.fail(
            f"{command.line.where}: `{command.line.text}` is refused by the parser: "
            f"{message[-1] if message else f'exit {exit_code}'}",
            pytrace=False,
        )
    if getattr(args, "handler", None) is None:
        pytest.fail(
            f"{command.line.where}: `{command.line.text}` names no command to run",
            pytrace=False,
        )


@pytest.mark.parametrize("link", LINKS, ids=[link.id for link in LINKS])
def test_a_relative_link_points_at_something_that_exists(link: DocLink) -> None:
    if _SCHEME.match(link.target) or link.target.startswith("//"):
        return  # absolute URL: not checked here
    target, _, fragment = link.target.partition("#")
    target = target.split("?")[0]
    path = (link.line.path.parent / target) if target else link.line.path
    if not path.exists():
        pytest.fail(f"{link.line.where}: the link {link.target} leads nowhere", pytrace=False)
    if fragment and path.suffix == ".md" and fragment not in anchors_of(path):
        pytest.fail(
            f"{link.line.where}: {path.name} has no heading with the anchor #{fragment}",
            pytrace=False,
        )


def test_the_docs_hold_commands_and_links_to_check() -> None:
    assert {path.name for path in doc_files()} >= {
        "README.md",
        "action.md",
        "architecture.md",
        "broker.md",
        "development.md",
        "policy.md",
        "providers.md",
    }
    assert any(c.tool == "jobtoken" and c.argv[:1] == ("broker",) for c in COMMANDS)
    assert any(c.tool == "jobtoken" and c.argv[:1] == ("policy",) for c in COMMANDS)
    assert any(c.tool == "dev" for c in COMMANDS)
    assert any(link.target.startswith("docs/") for link in LINKS)


def test_the_collector_reads_shell_blocks_only_and_joins_continuations(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```sh\n"
        "$ jobtoken policy check <file> FILE   # a comment\n"
        "jobtoken broker connector set x --config c.toml \\\n"
        "    --credential-file - < key.txt\n"
        "make test\n"
        "```\n"
        "```yaml\n"
        "jobtoken policy check not-a-shell-block.yml\n"
        "```\n"
        "  ```console\n"
        "  .venv/bin/python tests/support/dev.py oidc-issuer --port 1 | tee log\n"
        "  ```\n",
        encoding="utf-8",
    )
    found = [(c.line.number, c.tool, c.argv) for c in commands_in(page)]
    assert found == [
        (2, "jobtoken", ("policy", "check", "<file>", "FILE")),
        (
            3,
            "jobtoken",
            ("broker", "connector", "set", "x", "--config", "c.toml", "--credential-file", "-"),
        ),
        (11, "dev", ("oidc-issuer", "--port", "1")),
    ]


def test_links_in_code_are_not_links_and_anchors_follow_github(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# The hand-written HTTP/1.1 client\n"
        "## `provider: vault` (OpenBao)\n"
        "## Speed\n"
        "## Speed\n"
        "See [`the code`](code.py) and [up](#speed-1); `[not](a-link.md)`.\n"
        "```sh\n"
        "echo [nor](this.md)\n"
        "```\n",
        encoding="utf-8",
    )
    assert [link.target for link in links_in(page)] == ["code.py", "#speed-1"]
    assert anchors_of(page) == {
        "the-hand-written-http11-client",
        "provider-vault-openbao",
        "speed",
        "speed-1",
    }
