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
are ``PolicyError`` naming the file and line. The ``load_*`` functions raise
the first one (what the broker needs: an invalid file denies);
``check_policy_file`` gathers every one of them (what ``jobtoken policy
check`` reports). IDs are quoted strings of
digits (YAML would read ``0123`` or ``1:30`` as numbers). See
``jobtoken.policy.strict_yaml`` for the YAML subset and
``jobtoken.policy.conditions`` for matching.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import yaml

from jobtoken.policy.conditions import Condition
from jobtoken.policy.errors import PolicyError
from jobtoken.policy.nodes import (
    MAX_RULES,
    MAX_TTL_SECONDS,
    AlreadyReported,
    NodeReader,
    line_of,
)
from jobtoken.policy.strict_yaml import MAX_POLICY_BYTES, compose_strict

__all__ = [
    "MAX_TTL_SECONDS",
    "CheckedPolicyFile",
    "ConnectorCap",
    "OrgPolicy",
    "RepositoryPolicy",
    "Rule",
    "check_policy_file",
    "check_policy_text",
    "load_org_policy",
    "load_policy_file",
    "load_repository_policy",
]

_T = TypeVar("_T")
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
    return _raise_first(_read_repository(compose_strict(text, source), NodeReader(source)))


def load_org_policy(text: bytes | str, source: str) -> OrgPolicy:
    return _raise_first(_read_org(compose_strict(text, source), NodeReader(source)))


def load_policy_file(path: Path) -> RepositoryPolicy | OrgPolicy:
    """Load either kind of policy file (an ``organization`` key makes it an org policy)."""
    checked = check_policy_file(path)
    if checked.errors:
        raise checked.errors[0]
    assert checked.policy is not None
    return checked.policy


@dataclass(frozen=True)
class CheckedPolicyFile:
    """Every problem of one policy file; ``policy`` is None unless there is none.

    ``errors`` are in the order the loader meets them: the first is the one
    ``load_policy_file`` raises.
    """

    source: str
    policy: RepositoryPolicy | OrgPolicy | None
    errors: tuple[PolicyError, ...]


def check_policy_file(path: Path) -> CheckedPolicyFile:
    """Read a policy file of either kind and gather every error in it (never raises)."""
    source = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        error = PolicyError(source, 0, f"cannot read the file ({exc.strerror})")
        return CheckedPolicyFile(source, None, (error,))
    return check_policy_text(data, source)


def check_policy_text(text: bytes | str, source: str) -> CheckedPolicyFile:
    try:
        root = compose_strict(text, source)
    except PolicyError as exc:  # the YAML itself: nothing to walk
        return CheckedPolicyFile(source, None, (exc,))
    is_org = isinstance(root, yaml.MappingNode) and any(
        isinstance(key, yaml.ScalarNode) and key.value == "organization" for key, _ in root.value
    )
    reader = NodeReader(source)
    policy, errors = _read_org(root, reader) if is_org else _read_repository(root, reader)
    return CheckedPolicyFile(source, policy, errors)


_Read = tuple[_T | None, tuple[PolicyError, ...]]


def _raise_first(read: _Read[_T]) -> _T:
    policy, errors = read
    if errors:
        raise errors[0]
    assert policy is not None
    return policy


def _read_repository(root: yaml.Node, reader: NodeReader) -> _Read[RepositoryPolicy]:
    fields = reader.attempt(
        reader.mapping,
        root,
        "the policy",
        {"version", "repository", "repository_id", "connectors"},
    )
    if fields is None:
        return None, tuple(reader.errors)
    reader.attempt(reader.version, fields.get("version"))
    repository = reader.attempt(
        reader.matching, fields.get("repository"), "repository", _REPOSITORY, "owner/name"
    )
    repository_id = reader.attempt(reader.digits, fields.get("repository_id"), "repository_id")
    connectors: dict[str, tuple[Rule, ...]] = {}
    for name, rules_node in (
        reader.attempt(reader.named_entries, fields.get("connectors"), "connectors") or []
    ):
        rules = reader.attempt(reader.sequence, rules_node, f"connectors.{name}", MAX_RULES)
        read = [
            reader.attempt(partial(_rule, reader), node, name, i)
            for i, node in enumerate(rules or [])
        ]
        connectors[name] = tuple(rule for rule in read if rule is not None)
    if reader.errors or repository is None or repository_id is None:
        return None, tuple(reader.errors)
    return RepositoryPolicy(repository, repository_id, connectors, reader.source), ()


def _read_org(root: yaml.Node, reader: NodeReader) -> _Read[OrgPolicy]:
    fields = reader.attempt(
        reader.mapping,
        root,
        "the policy",
        {"version", "organization", "organization_id", "connectors"},
    )
    if fields is None:
        return None, tuple(reader.errors)
    reader.attempt(reader.version, fields.get("version"))
    organization = reader.attempt(
        reader.matching, fields.get("organization"), "organization", _OWNER, "a login"
    )
    organization_id = reader.attempt(
        reader.digits, fields.get("organization_id"), "organization_id"
    )
    caps: dict[str, ConnectorCap] = {}
    for name, node in (
        reader.attempt(reader.named_entries, fields.get("connectors"), "connectors") or []
    ):
        cap = reader.attempt(partial(_cap, reader), node, name)
        if cap is not None:
            caps[name] = cap
    if reader.errors or organization is None or organization_id is None:
        return None, tuple(reader.errors)
    return OrgPolicy(organization, organization_id, caps, reader.source), ()


def _rule(reader: NodeReader, node: yaml.Node, connector: str, index: int) -> Rule:
    where = f"connectors.{connector}[{index}]"
    before = len(reader.errors)
    fields = reader.mapping(node, where, {"scopes", "max_ttl"}, optional={"name", "when"})
    name = reader.attempt(reader.string, fields.get("name"), f"{where}.name")
    scopes = reader.attempt(reader.scopes, fields.get("scopes"), f"{where}.scopes")
    max_ttl = reader.attempt(reader.ttl, fields.get("max_ttl"), f"{where}.max_ttl")
    conditions = reader.attempt(reader.conditions, fields.get("when"), f"{where}.when")
    if len(reader.errors) > before or scopes is None or max_ttl is None:
        raise AlreadyReported
    return Rule(
        connector, index, name, scopes, max_ttl, conditions or (), reader.source, line_of(node)
    )


def _cap(reader: NodeReader, node: yaml.Node, connector: str) -> ConnectorCap:
    where = f"connectors.{connector}"
    before = len(reader.errors)
    fields = reader.mapping(node, where, {"scopes", "max_ttl"}, optional={"when"})
    scopes = reader.attempt(reader.scopes, fields.get("scopes"), f"{where}.scopes")
    max_ttl = reader.attempt(reader.ttl, fields.get("max_ttl"), f"{where}.max_ttl")
    conditions = reader.attempt(reader.conditions, fields.get("when"), f"{where}.when")
    if len(reader.errors) > before or scopes is None or max_ttl is None:
        raise AlreadyReported
    return ConnectorCap(connector, scopes, max_ttl, conditions or (), line_of(node))
