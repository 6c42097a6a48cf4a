"""One grammar for both halves: the action, the policy and the broker accept the same names."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jobtoken.action.errors import InputError
from jobtoken.action.inputs import InputReader, read_exchange_inputs
from jobtoken.broker.connectors.model import Connector
from jobtoken.policy.errors import PolicyError
from jobtoken.policy.schema import load_repository_policy
from jobtoken.wire.grammar import (
    CONNECTOR_NAME,
    MAX_INT_DIGITS,
    MAX_SCOPES,
    NUMERIC_ID,
    SCOPE,
    TOKEN_ID,
    check_connector_name,
    check_scope,
    format_duration,
    json_schema_pattern,
    parse_ascii_int,
    parse_duration,
    split_scopes,
)


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0), ("7", 7), ("010", 10), ("99999", 99999), ("0" * 5, 0)]
)
def test_ascii_ints_are_read_as_decimal(text: str, value: int) -> None:
    assert parse_ascii_int(text, 5) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "123456",  # more digits than the caller's bound
        "1" * 5000,  # int() would raise ValueError (over 4,300 digits)
        "\u00b2",  # '²'.isdigit() is True; int('²') raises ValueError
        "\u0661\u0662",  # Arabic-Indic digits: int() reads them
        "\uff11",  # a full-width digit: int() reads it
        "1_000",
        "+5",
        "-5",
        " 5",
        "5 ",
        "5\n",
        "0x1f",
        "1.0",
    ],
)
def test_anything_but_bounded_ascii_digits_is_not_an_int(text: str) -> None:
    assert parse_ascii_int(text, 5) is None


@given(st.text(max_size=12))
def test_parse_ascii_int_never_raises_and_agrees_with_int_on_ascii_digits(text: str) -> None:
    value = parse_ascii_int(text, 10)
    plain = 0 < len(text) <= 10 and all("0" <= c <= "9" for c in text)
    assert value == (int(text) if plain else None)


@pytest.mark.parametrize(
    ("text", "is_id"),
    [
        ("690001234", True),
        ("9" * 20, True),
        ("9" * 21, False),
        ("0", False),
        ("0123", False),
        ("123\n", False),
        ("\u00b2", False),
        ("\u0661", False),
        ("", False),
    ],
)
def test_numeric_ids_are_ascii_digits_spelt_one_way(text: str, is_id: bool) -> None:
    assert bool(NUMERIC_ID.match(text)) is is_id


def test_a_bound_past_what_int_always_reads_is_a_programming_error() -> None:
    assert parse_ascii_int("1" * MAX_INT_DIGITS, MAX_INT_DIGITS) == int("1" * MAX_INT_DIGITS)
    for bound in (0, MAX_INT_DIGITS + 1):
        with pytest.raises(ValueError, match="max_digits"):
            parse_ascii_int("1", bound)


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
        "1" * 5000 + "s",
        "1" * 5000,
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


# What an ECMA-262 engine (node) says of each sample, for each pattern: JSON Schema's
# `pattern` is ECMA-262, searched in the whole value.
_ECMA_VERDICTS = """
const [patterns, samples] = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(patterns.map((p) => samples.map((s) => new RegExp(p).test(s)))));
"""
_SAMPLES = [
    *("hubspot", "crm-v2", "a" * 63, "a" * 64, "crm.read", "x" * 128, "x" * 129, "sha256:0f"),
    *("hubspot\n", "\nhubspot", "hubspotZ", "Z", "", "a b", 'a"b', "a\\b", "a\x7f", "hubspöt"),
    *(" ".join(["s"] * MAX_SCOPES), " ".join(["s"] * (MAX_SCOPES + 1)), "a  b", " a", "a "),
]


def _python_verdict(rule: re.Pattern[str], repeat: int, sample: str) -> bool:
    if repeat == 1:
        return rule.match(sample) is not None
    parts = sample.split(" ")
    return len(parts) <= repeat and all(rule.match(part) for part in parts)


def test_json_schema_patterns_accept_in_an_ecma_engine_exactly_what_the_rules_do() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node, an ECMA-262 engine")
    rules = [(CONNECTOR_NAME, 1), (SCOPE, 1), (TOKEN_ID, 1), (SCOPE, MAX_SCOPES)]
    patterns = [json_schema_pattern(rule, repeat) for rule, repeat in rules]
    answer = subprocess.run(
        [node, "-e", _ECMA_VERDICTS],
        input=json.dumps([patterns, _SAMPLES]),
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    ecma = json.loads(answer.stdout)
    for (rule, repeat), pattern, verdicts in zip(rules, patterns, ecma, strict=True):
        expected = [_python_verdict(rule, repeat, sample) for sample in _SAMPLES]
        assert verdicts == expected, pattern
    # the samples exercise both answers of every pattern
    assert all(any(verdicts) and not all(verdicts) for verdicts in ecma)


def test_json_schema_pattern_anchors_the_rule_without_python_only_syntax() -> None:
    assert json_schema_pattern(CONNECTOR_NAME) == "^[a-z0-9][a-z0-9_-]{0,62}$"
    assert "\\Z" not in json_schema_pattern(SCOPE, MAX_SCOPES)


@pytest.mark.parametrize("pattern", [r"[a-z]+", r"a|b\Z", r"(?P<x>a)\Z", r"\Aa\Z"])
def test_json_schema_pattern_refuses_a_rule_it_cannot_write_exactly(pattern: str) -> None:
    with pytest.raises(ValueError, match="json_schema_pattern"):
        json_schema_pattern(re.compile(pattern))


SRC = Path(__file__).resolve().parents[3] / "src"
#: str methods true for other scripts' digits, and for '²', which int() refuses
_UNICODE_DIGIT_TESTS = frozenset({"isdigit", "isnumeric", "isdecimal"})


def test_no_module_tests_digits_with_str_isdigit_or_a_backslash_d() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in _UNICODE_DIGIT_TESTS:
                found.append(f"{path.relative_to(SRC)}:{node.lineno} .{node.attr}()")
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and "\\d" in text:  # in a str pattern: any script's digit
                found.append(f"{path.relative_to(SRC)}:{node.lineno} \\d (any script's digit)")
    assert found == []
