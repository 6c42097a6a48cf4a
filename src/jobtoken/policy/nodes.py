"""Typed values read from a policy file's YAML nodes, every problem gathered.

``NodeReader(source)`` walks the nodes of ``compose_strict``: each method
that reads one value (``string``, ``ttl``, ``scopes``, ``conditions``, …)
raises ``PolicyError`` with the node's line at its problem; ``attempt`` runs
one, keeps the error in ``errors`` and returns None, so that the caller goes
on with the value's siblings. A mapping with unknown, missing or repeated
keys keeps each of those errors and returns the keys it could read. A list
(scopes, condition values, conditions) reads every item, and then raises
``AlreadyReported`` if any was invalid. ``errors`` is in the order a reader
that stopped at the first problem would have met them. ``jobtoken.policy.schema`` builds the
policy file format on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import yaml

from jobtoken.policy.conditions import CLAIMS, Condition
from jobtoken.policy.errors import PolicyError
from jobtoken.policy.strict_yaml import INT_TAG, STR_TAG
from jobtoken.wire.grammar import (
    NUMERIC_ID,
    SCOPE,
    SCOPE_RULE,
    check_connector_name,
    parse_ascii_int,
    parse_duration,
)

__all__ = [
    "MAX_CONNECTORS",
    "MAX_LIST",
    "MAX_RULES",
    "MAX_STRING",
    "MAX_TTL_SECONDS",
    "AlreadyReported",
    "NodeReader",
    "line_of",
]

MAX_TTL_SECONDS = 24 * 3600
_TTL_DIGITS = len(str(MAX_TTL_SECONDS))
MAX_CONNECTORS = 64
MAX_RULES = 64
MAX_LIST = 100
MAX_STRING = 512

_T = TypeVar("_T")


class AlreadyReported(Exception):
    """A value is invalid and its problems are already in ``NodeReader.errors``."""


def line_of(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


class NodeReader:
    """Walks the YAML nodes of one file (``source``), gathering every problem."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[PolicyError] = []

    def attempt(self, read: Callable[..., _T], node: yaml.Node | None, *args: object) -> _T | None:
        """``read(node, *args)``, or None: the node is missing (already reported) or invalid."""
        if node is None:
            return None
        try:
            return read(node, *args)
        except PolicyError as exc:
            self.errors.append(exc)
            return None
        except AlreadyReported:
            return None

    def fail(self, node: yaml.Node, message: str) -> PolicyError:
        return PolicyError(self.source, line_of(node), message)

    def mapping(
        self,
        node: yaml.Node,
        where: str,
        required: set[str],
        *,
        optional: set[str] | frozenset[str] = frozenset(),
    ) -> dict[str, yaml.Node]:
        entries = self.entries(node, where, None)
        known = required | set(optional)
        for key, (key_node, _) in entries.items():
            if key not in known:
                listed = ", ".join(sorted(known))
                self.errors.append(
                    self.fail(key_node, f"unknown key {key!r} in {where} (known: {listed})")
                )
        for key in sorted(required):
            if key not in entries:
                self.errors.append(self.fail(node, f"{where} needs the key {key!r}"))
        return {key: value for key, (_, value) in entries.items() if key in known}

    def entries(
        self, node: yaml.Node, where: str, limit: int | None
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{where} must be a mapping")
        if limit is not None and len(node.value) > limit:
            raise self.fail(node, f"{where} has more than {limit} entries")
        result: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != STR_TAG:
                self.errors.append(
                    self.fail(key_node, f"the keys of {where} must be plain strings")
                )
            elif key_node.value in result:
                self.errors.append(
                    self.fail(key_node, f"{where} repeats the key {key_node.value!r}")
                )
            else:
                result[key_node.value] = (key_node, value_node)
        return result

    def named_entries(self, node: yaml.Node, where: str) -> list[tuple[str, yaml.Node]]:
        entries = self.entries(node, where, MAX_CONNECTORS)
        if not entries:
            raise self.fail(node, f"{where} must name at least one connector")
        named = []
        for name, (key_node, value) in entries.items():
            problem = check_connector_name(name)
            if problem is not None:
                self.errors.append(self.fail(key_node, f"connector {name!r}: {problem}"))
            else:
                named.append((name, value))
        return named

    def sequence(self, node: yaml.Node, where: str, limit: int) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{where} must be a list")
        if not 0 < len(node.value) <= limit:
            raise self.fail(node, f"{where} must hold 1 to {limit} items")
        return list(node.value)

    def string(self, node: yaml.Node, where: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != STR_TAG:
            raise self.fail(node, f"{where} must be a string (quote it)")
        value = str(node.value)
        if not 0 < len(value) <= MAX_STRING or not value.isprintable():
            raise self.fail(node, f"{where} must be 1 to {MAX_STRING} printable characters")
        return value

    def matching(self, node: yaml.Node, where: str, pattern: re.Pattern[str], what: str) -> str:
        value = self.string(node, where)
        if not pattern.fullmatch(value):
            raise self.fail(node, f"{where} must be {what}")
        return value

    def digits(self, node: yaml.Node, where: str) -> str:
        if isinstance(node, yaml.ScalarNode) and node.tag == INT_TAG:
            raise self.fail(node, f'{where} must be a quoted string of digits, e.g. "{node.value}"')
        return self.matching(node, where, NUMERIC_ID, "a string of digits without a leading zero")

    def version(self, node: yaml.Node) -> None:
        if not (isinstance(node, yaml.ScalarNode) and node.tag == INT_TAG and node.value == "1"):
            raise self.fail(node, "version must be 1")

    def ttl(self, node: yaml.Node, where: str) -> int:
        if isinstance(node, yaml.ScalarNode) and node.tag == INT_TAG:
            # None for a negative number or more digits than any TTL: out of range below
            seconds = parse_ascii_int(str(node.value), _TTL_DIGITS)
        else:
            seconds = parse_duration(self.string(node, where))
            if seconds is None:
                raise self.fail(
                    node, f"{where} must be seconds or a duration like 90s, 15m, 1h or 1h30m"
                )
        if seconds is None or not 0 < seconds <= MAX_TTL_SECONDS:
            raise self.fail(node, f"{where} must be between 1 s and {MAX_TTL_SECONDS} s")
        return seconds

    def strings(self, node: yaml.Node, where: str) -> tuple[str, ...]:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if isinstance(node, yaml.SequenceNode):
            self.sequence(node, where, MAX_LIST)
        return self.every(items, self.string, where)

    def scopes(self, node: yaml.Node, where: str) -> frozenset[str]:
        values = self.sequence(node, where, MAX_LIST)
        return frozenset(self.every(values, self.matching, where, SCOPE, SCOPE_RULE))

    def every(
        self, nodes: list[yaml.Node], read: Callable[..., str], *args: object
    ) -> tuple[str, ...]:
        """``read`` each node, gathering all errors; raises the first when any failed."""
        before = len(self.errors)
        values = [self.attempt(read, node, *args) for node in nodes]
        if len(self.errors) > before:
            raise AlreadyReported
        return tuple(value for value in values if value is not None)

    def conditions(self, node: yaml.Node | None, where: str) -> tuple[Condition, ...]:
        if node is None:
            return ()
        before = len(self.errors)
        result = []
        for claim, (key_node, value_node) in self.entries(node, where, None).items():
            condition = self.attempt(self.condition, value_node, claim, key_node, where)
            if condition is not None:
                result.append(condition)
        if len(self.errors) > before:
            raise AlreadyReported
        return tuple(result)

    def condition(
        self, value_node: yaml.Node, claim: str, key_node: yaml.Node, where: str
    ) -> Condition:
        if claim not in CLAIMS:
            known = ", ".join(sorted(CLAIMS))
            raise self.fail(key_node, f"unknown claim {claim!r} in {where} (known: {known})")
        values = self.strings(value_node, f"{where}.{claim}")
        try:
            return Condition(claim, values, line_of(key_node))
        except ValueError as exc:
            raise self.fail(value_node, f"{where}.{claim}: {exc}") from None
