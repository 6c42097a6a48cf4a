"""The YAML subset of policy files: no aliases, tags or YAML 1.1 surprises."""

from __future__ import annotations

import pytest
import yaml

from jobtoken.policy.errors import PolicyError
from jobtoken.policy.strict_yaml import (
    BOOL_TAG,
    INT_TAG,
    MAX_POLICY_BYTES,
    NULL_TAG,
    STR_TAG,
    compose_strict,
)


def refused(text: str | bytes, match: str) -> PolicyError:
    with pytest.raises(PolicyError, match=match) as caught:
        compose_strict(text, "policy.yml")
    assert caught.value.source == "policy.yml"
    return caught.value


def scalar_tags(text: str) -> dict[str, str]:
    root = compose_strict(text, "policy.yml")
    assert isinstance(root, yaml.MappingNode)
    return {key.value: value.tag for key, value in root.value}


def test_yaml_1_1_booleans_stay_strings() -> None:
    tags = scalar_tags("on: 1\nno: x\nenvironment: no\na: yes\nb: off\nc: On\nd: true\ne: false")
    assert tags["environment"] == STR_TAG
    assert tags["a"] == tags["b"] == tags["c"] == STR_TAG
    assert tags["d"] == tags["e"] == BOOL_TAG
    root = compose_strict("on: 1\nno: x", "policy.yml")
    assert isinstance(root, yaml.MappingNode)
    assert [(key.tag, key.value) for key, _ in root.value] == [(STR_TAG, "on"), (STR_TAG, "no")]


def test_only_plain_decimal_integers_are_integers() -> None:
    tags = scalar_tags("a: 900\nb: 0755\nc: 1:30\nd: 0x1F\ne: 1_000\nf: 1.5\ng: 2001-12-14\nh: -3")
    assert tags["a"] == tags["h"] == INT_TAG
    for name in "bcdefg":
        assert tags[name] == STR_TAG, name


def test_null_forms() -> None:
    tags = scalar_tags("a: null\nb: ~\nc:\nd: Null\ne: 'null'")
    assert tags["a"] == tags["b"] == tags["c"] == NULL_TAG
    assert tags["d"] == tags["e"] == STR_TAG


def test_aliases_and_anchors_are_refused_with_their_line() -> None:
    assert refused("a: &x [1]\nb: *x\n", "anchors").line == 1
    assert refused("a: 1\nb:\n  - *x\n", "aliases").line == 3


def test_billion_laughs_is_refused_at_its_first_anchor() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for index in range(1, 9):
        prev, name = chr(ord("a") + index - 1), chr(ord("a") + index)
        lines.append(f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    assert refused("\n".join(lines), "anchors").line == 1


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object:os.system {}",
        "a: !!python/object/apply:os.system ['echo pwned']",
        "!!python/name:os.system",
        "a: !!binary aGVsbG8=",
        "a: !!str 1",
        "a: !custom x",
        "a: !!map {b: 1}",
    ],
)
def test_tags_are_refused(text: str) -> None:
    assert refused(text, "tags").line == 1


def test_merge_keys_are_plain_strings_not_merges() -> None:
    assert scalar_tags("<<: x")["<<"] == STR_TAG


def test_oversized_input_is_refused_before_parsing() -> None:
    refused("a: " + "x" * (1024 * 1024), "larger than 65536 bytes")
    refused(b"#" * (MAX_POLICY_BYTES + 1), "larger than")
    compose_strict("a: " + "x" * (MAX_POLICY_BYTES - 10), "policy.yml")


def test_multiple_documents_are_refused() -> None:
    refused("a: 1\n---\nb: 2\n", "not valid YAML")


def test_invalid_utf8_and_empty_files_are_refused() -> None:
    assert refused(b"a: 1\nb: \xff\n", "not UTF-8").line == 2
    refused("", "empty")
    refused("# only a comment\n", "empty")


def test_syntax_errors_report_their_line() -> None:
    assert refused("a: 1\nb: [1, 2\nc: 3\n", "not valid YAML").line >= 2


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [("a:\n\t- b\n", 2, 1), ("a:\n  b:\tc\n", 2, 5)],
)
def test_a_tab_is_named_with_its_line_and_column_and_what_to_do(
    text: str, line: int, column: int
) -> None:
    error = refused(text, f"a tab character \\(column {column}\\)")
    assert error.line == line
    assert error.message.endswith("YAML does not allow tabs there; indent with spaces")
