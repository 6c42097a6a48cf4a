"""YAML for policy files: a node tree with line numbers, and nothing surprising.

``compose_strict(text, source)`` returns the root ``yaml.Node`` of a single
YAML document or raises ``PolicyError`` with the line of the problem. It is
``yaml.SafeLoader``'s composer (no Python objects are ever constructed) with:

- no anchors or aliases (no billion laughs, no shared structure);
- no explicit tags (``!!python/object``, ``!!binary``, ``!!str``…);
- YAML 1.2 scalars: only ``true``/``false`` are booleans (``on``, ``no``,
  ``yes``, ``off`` stay strings, so a key ``on:`` is the string "on"), only
  plain decimal integers are integers (no octal ``0755``, sexagesimal
  ``1:30``, ``0x``, ``1_000``), ``null``/``~``/empty is null, everything else
  is a string (no floats, no timestamps, no ``<<`` merge keys);
- at most ``MAX_POLICY_BYTES`` (64 KiB) of UTF-8 text, nested at most
  ``MAX_DEPTH`` collections deep (PyYAML's composer recurses once a level: a
  file of ``[[[[…`` would otherwise end in ``RecursionError``, not ``PolicyError``).

Callers walk the nodes (``ScalarNode.tag`` is one of the ``*_TAG`` constants)
and report problems with ``node.start_mark.line + 1``.
"""

from __future__ import annotations

import re

import yaml

from jobtoken.policy.errors import PolicyError

__all__ = [
    "BOOL_TAG",
    "INT_TAG",
    "MAX_DEPTH",
    "MAX_POLICY_BYTES",
    "NULL_TAG",
    "STR_TAG",
    "compose_strict",
]

MAX_POLICY_BYTES = 64 * 1024
#: deepest nesting of nodes (a policy needs 7: policy, connectors, rules, rule, when, list, value)
MAX_DEPTH = 32
BOOL_TAG = "tag:yaml.org,2002:bool"
INT_TAG = "tag:yaml.org,2002:int"
NULL_TAG = "tag:yaml.org,2002:null"
STR_TAG = "tag:yaml.org,2002:str"


class _StrictLoader(yaml.SafeLoader):
    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1 if event.start_mark else 0
        if self.depth >= MAX_DEPTH:
            raise PolicyError(self.name, line, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(event, yaml.AliasEvent):
            raise PolicyError(self.name, line, "YAML aliases (*name) are not allowed")
        if getattr(event, "anchor", None) is not None:
            raise PolicyError(self.name, line, "YAML anchors (&name) are not allowed")
        if getattr(event, "tag", None) is not None:
            raise PolicyError(self.name, line, "YAML tags (!…) are not allowed")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_StrictLoader.yaml_implicit_resolvers = {}
_StrictLoader.add_implicit_resolver(BOOL_TAG, re.compile(r"^(?:true|false)\Z"), list("tf"))
_StrictLoader.add_implicit_resolver(
    INT_TAG, re.compile(r"^-?(?:0|[1-9][0-9]*)\Z"), list("-0123456789")
)
_StrictLoader.add_implicit_resolver(NULL_TAG, re.compile(r"^(?:~|null|)\Z"), ["~", "n", ""])


def compose_strict(text: bytes | str, source: str) -> yaml.Node:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(source, 0, f"the file is larger than {MAX_POLICY_BYTES} bytes")
    try:
        decoded = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise PolicyError(source, raw.count(b"\n", 0, exc.start) + 1, "not UTF-8") from None
    try:
        loader = _StrictLoader(decoded)  # reads the whole text: refuses control characters
    except yaml.reader.ReaderError as exc:
        line = decoded.count("\n", 0, exc.position) + 1
        raise PolicyError(
            source, line, f"not valid YAML: the character U+{exc.character:04X} is not allowed"
        ) from None
    loader.name = source
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise PolicyError(source, line, f"not valid YAML: {_problem(exc, decoded)}") from None
    except yaml.YAMLError:
        raise PolicyError(source, 0, "not valid YAML") from None
    finally:
        loader.dispose()
    if node is None:
        raise PolicyError(source, 1, "the file is empty")
    return node


def _problem(exc: yaml.MarkedYAMLError, text: str) -> str:
    """PyYAML's problem, said as what to fix; a tab (which PyYAML shows as ``'\\t'``,
    a backslash an OAuth error text cannot carry) as what YAML wants instead."""
    mark = exc.problem_mark or exc.context_mark
    problem = str(exc.problem or exc.context)
    lines = text.splitlines()
    at = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
    if r"'\t'" in problem or ("\t" in at and "cannot start any token" in problem):
        column = at.find("\t") + 1 if "\t" in at else (mark.column + 1 if mark else 0)
        return (
            f"a tab character (column {column}): YAML does not allow tabs there; indent with spaces"
        )
    return problem
