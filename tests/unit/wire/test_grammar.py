"""One grammar for both halves: the action, the policy and the broker accept the same names."""

from __future__ import annotations

import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jobtoken.action.errors import InputError
from jobtoken.action.inputs import InputReader, read_exchange_inputs
from jobtoken.broker.connectors.model import Connector
from jobtoken.policy.errors import PolicyError
from jobtoken.policy.schema import load_repository_policy
from jobtoken.wire.grammar import (
    check_connector_name,
    check_scope,
    format_duration,
    parse_duration,
    split_scopes,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("2m5s", 125), ("900", 900)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "15 m",
        "1d",
        "m",
        "-5m",
        "1.5h",
        "15M",
        "15m\n",
        "²³",
        "\u0661\u0665m",
        "9999999h",
        "30m1h",
    ],
)
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_scopes_split_at_ascii_space_tab_and_line_breaks_only() -> None:
    assert split_scopes(" a\tb\r\nc  d ") == ("a", "b", "c", "d")
    assert split_scopes("a\x1fb") == ("a\x1fb",)  # one (invalid) scope, not two
    assert split_scopes("a\u3000b") == ("a\u3000b",)
    assert split_scopes("") == ()


def test_format_duration_states_the_exact_value() -> None:
    assert [format_duration(s) for s in (7200, 900, 90, 0)] == ["2h", "15m", "90s", "0s"]


@pytest.mark.parametrize("name", ["hubspot", "crm-v2", "a", "a_b", "0x", "a" * 63])
def test_connector_names(name: str) -> None:
    assert check_connector_name(name) is None


@pytest.mark.parametrize(
    "name", ["", "crm.v2", "HubSpot", "-a", "_a", "a/b", "a b", "a" * 64, "hubspot\n", "hubspöt"]
)
def test_not_connector_names(name: str) -> None:
    assert "lower-case letters" in (check_connector_name(name) or "")


@pytest.mark.parametrize("scope", ["crm.read", "a", "x" * 128, "repo:read", "a*", "~!#[]"])
def test_scopes(scope: str) -> None:
    assert check_scope(scope) is None


@pytest.mark.parametrize("scope", ["", "a b", 'a"b', "a\\b", "x" * 129, "a\n", "é", "a,b\t"])
def test_not_scopes(scope: str) -> None:
    assert "RFC 6749" in (check_scope(scope) or "")


# -- the three halves agree -------------------------------------------------------------


def action_accepts(connector: str, scope: str) -> bool:
    env = {"INPUT_BROKER_URL": "https://b.example", "INPUT_CONNECTOR": connector}
    env["INPUT_SCOPES"] = scope
    refused_input = None
    try:
        read_exchange_inputs(InputReader(env))
    except InputError as exc:
        refused_input = exc.input_name
    assert refused_input in (None, "connector", "scopes")
    return refused_input is None


def policy_accepts(connector: str, scope: str) -> bool:
    text = json.dumps(  # JSON is YAML: every string is quoted exactly
        {
            "version": 1,
            "repository": "octo-org/app",
            "repository_id": "1",
            "connectors": {connector: [{"scopes": [scope], "max_ttl": 900}]},
        }
    )
    try:
        load_repository_policy(text, "policy.yml")
    except PolicyError:
        return False
    return True


def broker_accepts(connector: str, scope: str) -> bool:
    try:
        Connector(name=connector, scopes=(scope,))
    except ValueError:
        return False
    return True


def verdicts(connector: str, scope: str) -> tuple[bool, bool, bool]:
    return (
        action_accepts(connector, scope),
        policy_accepts(connector, scope),
        broker_accepts(connector, scope),
    )


@pytest.mark.parametrize(
    ("connector", "scope", "accepted"),
    [
        ("hubspot", "crm.read", True),
        ("crm.v2", "crm.read", False),  # the case that drifted: the broker config refused it
        ("a" * 64, "crm.read", False),
        ("hubspot", "x" * 129, False),
        ("hubspot", 'a"b', False),  # the policy used to accept `"` and `\`
        ("hubspot", "a\\b", False),
    ],
)
def test_the_three_halves_agree_on_known_cases(connector: str, scope: str, accepted: bool) -> None:
    assert verdicts(connector, scope) == (accepted, accepted, accepted)


#: any character UTF-8 encodes: all but the surrogates (Cs); said without codec="utf-8",
#: which has hypothesis map the codec over every code point first (~3 s, once a clone)
NAMEISH = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=70)


@settings(max_examples=300, deadline=None)
@given(
    connector=st.one_of(NAMEISH, st.from_regex(r"[a-z0-9][a-z0-9._-]{0,64}", fullmatch=True)),
    scope=st.one_of(NAMEISH, st.from_regex(r"[!-~]{1,130}", fullmatch=True)),
)
def test_the_three_halves_accept_exactly_the_same_names(connector: str, scope: str) -> None:
    # The runner trims every input, as the action does: compare names as they arrive.
    assume(connector == connector.strip(" \t\r\n"))
    if not scope.strip(" \t\r\n") or any(c in scope for c in " \t\r\n"):
        scope = "s"  # the action's `scopes` input is a list split at these; one scope here
    action, policy, broker = verdicts(connector, scope)
    assert action == policy == broker, (connector, scope, (action, policy, broker))
