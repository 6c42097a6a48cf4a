"""Policy files: their schema, loaded into typed values with line-numbered errors.

A **repository policy** (``.github/jobtoken.yml`` on the default branch, or a
file in the broker's policy directory)::

    version: 1
    repository: octo-org/app          # name AND id must both match the token
    repository_id: "123456789"
    connectors:
      hubspot:                        # connector name -> rules, first match wins
        - name: nightly-sync          # optional, shown by `policy explain`
          scopes: [crm.objects.contacts.read]
          max_ttl: 15m                # seconds, or 90s / 15m / 1h / 1h30m
          when:                       # every condition must hold
            ref: refs/heads/main
            event_name: [schedule, workflow_dispatch]

An **organization policy** caps what repository policies may grant; a
connector it does not list cannot be granted at all::

    version: 1
    organization: octo-org
    organization_id: "9919"           # the repository_owner_id claim
    connectors:
      hubspot:
        scopes: [crm.objects.contacts.read, crm.objects.contacts.write]
        max_ttl: 30m
        when: {runner_environment: github-hosted}   # optional, must also hold

Unknown keys, repeated keys, wrong types, empty lists and out-of-range values
are ``PolicyError`` naming the file and line. IDs are quoted strings of
digits (YAML would read ``0123`` or ``1:30`` as numbers). See
``jobtoken.policy.strict_yaml`` for the YAML subset and
``jobtoken.policy.conditions`` for matching.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from jobtoken.policy.conditions import CLAIMS, Condition
from jobtoken.policy.errors import PolicyError
from jobtoken.policy.strict_yaml import INT_TAG, MAX_POLICY_BYTES, STR_TAG, compose_strict
from jobtoken.wire.grammar import SCOPE, SCOPE_RULE, check_connector_name, parse_duration

__all__ = [
    "MAX_TTL_SECONDS",
    "ConnectorCap",
    "OrgPolicy",
    "RepositoryPolicy",
    "Rule",
    "load_org_policy",
    "load_policy_file",
    "load_repository_policy",
]

MAX_TTL_SECONDS = 24 * 3600
MAX_CONNECTORS = 64
MAX_RULES = 64
MAX_LIST = 100
MAX_STRING = 512

_DIGITS = re.compile(r"[1-9][0-9]{0,19}")
_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}")


@dataclass(frozen=True)
class Rule:
    """One way a job may get a connector's token."""

    connector: str
    index: int
    name: str | None
    scopes: frozenset[str]
    max_ttl: int
    conditions: tuple[Condition, ...]
    source: str
    line: int

    @property
    def label(self) -> str:
        named = f" {self.name!r}" if self.name else ""
        return f"connectors.{self.connector}[{self.index}]{named} ({self.source} line {self.line})"


@dataclass(frozen=True)
class RepositoryPolicy:
    repository: str
    repository_id: str
    connectors: Mapping[str, tuple[Rule, ...]]
    source: str


@dataclass(frozen=True)
class ConnectorCap:
    """The most an organization lets any repository policy grant for one connector."""

    connector: str
    scopes: frozenset[str]
    max_ttl: int
    conditions: tuple[Condition, ...]
    line: int


@dataclass(frozen=True)
class OrgPolicy:
    organization: str
    organization_id: str
    connectors: Mapping[str, ConnectorCap]
    source: str


def load_repository_policy(text: bytes | str, source: str) -> RepositoryPolicy:
    root = compose_strict(text, source)
    fields = _Reader(source).mapping(
        root, "the policy", {"version", "repository", "repository_id", "connectors"}
    )
    reader = _Reader(source)
    reader.version(fields["version"])
    repository = reader.matching(fields["repository"], "repository", _REPOSITORY, "owner/name")
    repository_id = reader.digits(fields["repository_id"], "repository_id")
    connectors: dict[str, tuple[Rule, ...]] = {}
    for name, rules_node in reader.named_entries(fields["connectors"], "connectors"):
        rules = reader.sequence(rules_node, f"connectors.{name}", MAX_RULES)
        connectors[name] = tuple(reader.rule(name, i, node) for i, node in enumerate(rules))
    return RepositoryPolicy(repository, repository_id, connectors, source)


def load_org_policy(text: bytes | str, source: str) -> OrgPolicy:
    root = compose_strict(text, source)
    reader = _Reader(source)
    fields = reader.mapping(
        root, "the policy", {"version", "organization", "organization_id", "connectors"}
    )
    reader.version(fields["version"])
    organization = reader.matching(fields["organization"], "organization", _OWNER, "a login")
    organization_id = reader.digits(fields["organization_id"], "organization_id")
    caps: dict[str, ConnectorCap] = {}
    for name, node in reader.named_entries(fields["connectors"], "connectors"):
        where = f"connectors.{name}"
        cap = reader.mapping(node, where, {"scopes", "max_ttl"}, optional={"when"})
        caps[name] = ConnectorCap(
            connector=name,
            scopes=reader.scopes(cap["scopes"], f"{where}.scopes"),
            max_ttl=reader.ttl(cap["max_ttl"], f"{where}.max_ttl"),
            conditions=reader.conditions(cap.get("when"), f"{where}.when"),
            line=_line(node),
        )
    return OrgPolicy(organization, organization_id, caps, source)


def load_policy_file(path: Path) -> RepositoryPolicy | OrgPolicy:
    """Load either kind of policy file (an ``organization`` key makes it an org policy)."""
    source = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(source, 0, f"cannot read the file ({exc.strerror})") from None
    root = compose_strict(data, source)
    is_org = isinstance(root, yaml.MappingNode) and any(
        isinstance(key, yaml.ScalarNode) and key.value == "organization" for key, _ in root.value
    )
    return load_org_policy(data, source) if is_org else load_repository_policy(data, source)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


class _Reader:
    """Walks YAML nodes, raising ``PolicyError`` at the first problem."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: yaml.Node, message: str) -> PolicyError:
        return PolicyError(self.source, _line(node), message)

    def mapping(
        self,
        node: yaml.Node,
        where: str,
        required: set[str],
        *,
        optional: set[str] | frozenset[str] = frozenset(),
    ) -> dict[str, yaml.Node]:
        entries = self.entries(node, where, None)
        for key, (key_node, _) in entries.items():
            if key not in required and key not in optional:
                known = ", ".join(sorted(required | set(optional)))
                raise self.fail(key_node, f"unknown key {key!r} in {where} (known: {known})")
        for key in sorted(required):
            if key not in entries:
                raise self.fail(node, f"{where} needs the key {key!r}")
        return {key: value for key, (_, value) in entries.items()}

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
                raise self.fail(key_node, f"the keys of {where} must be plain strings")
            if key_node.value in result:
                raise self.fail(key_node, f"{where} repeats the key {key_node.value!r}")
            result[key_node.value] = (key_node, value_node)
        return result

    def named_entries(self, node: yaml.Node, where: str) -> list[tuple[str, yaml.Node]]:
        entries = self.entries(node, where, MAX_CONNECTORS)
        if not entries:
            raise self.fail(node, f"{where} must name at least one connector")
        for name, (key_node, _) in entries.items():
            problem = check_connector_name(name)
            if problem is not None:
                raise self.fail(key_node, f"connector {name!r}: {problem}")
        return [(name, value) for name, (_, value) in entries.items()]

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
        return self.matching(node, where, _DIGITS, "a string of digits without a leading zero")

    def version(self, node: yaml.Node) -> None:
        if not (isinstance(node, yaml.ScalarNode) and node.tag == INT_TAG and node.value == "1"):
            raise self.fail(node, "version must be 1")

    def ttl(self, node: yaml.Node, where: str) -> int:
        if isinstance(node, yaml.ScalarNode) and node.tag == INT_TAG:
            seconds = int(node.value)
        else:
            parsed = parse_duration(self.string(node, where))
            if parsed is None:
                raise self.fail(
                    node, f"{where} must be seconds or a duration like 90s, 15m, 1h or 1h30m"
                )
            seconds = parsed
        if not 0 < seconds <= MAX_TTL_SECONDS:
            raise self.fail(node, f"{where} must be between 1 s and {MAX_TTL_SECONDS} s")
        return seconds

    def strings(self, node: yaml.Node, where: str) -> tuple[str, ...]:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if isinstance(node, yaml.SequenceNode):
            self.sequence(node, where, MAX_LIST)
        return tuple(self.string(item, where) for item in items)

    def scopes(self, node: yaml.Node, where: str) -> frozenset[str]:
        values = self.sequence(node, where, MAX_LIST)
        return frozenset(self.matching(v, where, SCOPE, SCOPE_RULE) for v in values)

    def conditions(self, node: yaml.Node | None, where: str) -> tuple[Condition, ...]:
        if node is None:
            return ()
        result = []
        for claim, (key_node, value_node) in self.entries(node, where, None).items():
            if claim not in CLAIMS:
                known = ", ".join(sorted(CLAIMS))
                raise self.fail(key_node, f"unknown claim {claim!r} in {where} (known: {known})")
            values = self.strings(value_node, f"{where}.{claim}")
            try:
                result.append(Condition(claim, values, _line(key_node)))
            except ValueError as exc:
                raise self.fail(value_node, f"{where}.{claim}: {exc}") from None
        return tuple(result)

    def rule(self, connector: str, index: int, node: yaml.Node) -> Rule:
        where = f"connectors.{connector}[{index}]"
        fields = self.mapping(node, where, {"scopes", "max_ttl"}, optional={"name", "when"})
        return Rule(
            connector=connector,
            index=index,
            name=self.string(fields["name"], f"{where}.name") if "name" in fields else None,
            scopes=self.scopes(fields["scopes"], f"{where}.scopes"),
            max_ttl=self.ttl(fields["max_ttl"], f"{where}.max_ttl"),
            conditions=self.conditions(fields.get("when"), f"{where}.when"),
            source=self.source,
            line=_line(node),
        )
