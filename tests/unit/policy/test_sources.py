"""The broker's policy directory as a policy source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobtoken.policy import DirectoryPolicySource, PolicyError, PolicySourceError
from jobtoken.policy.sources import directory_contents

POLICY = """\
version: 1
repository: Octo-Org/App
repository_id: "42"
connectors:
  hubspot:
    - scopes: [contacts.read]
      max_ttl: {ttl}
"""


def write(root: Path, ttl: int = 300, name: str = "app.yml") -> Path:
    (root / "octo-org").mkdir(exist_ok=True)
    path = root / "octo-org" / name
    path.write_text(POLICY.format(ttl=ttl))
    return path


def test_policy_is_found_by_lower_case_owner_and_name(tmp_path: Path) -> None:
    write(tmp_path)
    source = DirectoryPolicySource(tmp_path)
    policy = source.policy_for("Octo-Org/App", "42")
    assert policy is not None
    assert (policy.repository, policy.repository_id) == ("Octo-Org/App", "42")
    assert policy.connectors["hubspot"][0].source == "octo-org/app.yml"
    assert source.file_for("Octo-Org/App") == tmp_path / "octo-org" / "app.yml"


def test_missing_policy_is_none(tmp_path: Path) -> None:
    assert DirectoryPolicySource(tmp_path).policy_for("octo-org/other", "1") is None


def test_changed_file_is_reread(tmp_path: Path) -> None:
    path = write(tmp_path, ttl=300)
    source = DirectoryPolicySource(tmp_path)
    first = source.policy_for("octo-org/app", "42")
    assert first is not None
    assert source.policy_for("octo-org/app", "42") is first, "unchanged file: cached"
    write(tmp_path, ttl=60)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = source.policy_for("octo-org/app", "42")
    assert second is not None
    assert second.connectors["hubspot"][0].max_ttl == 60


def test_invalid_file_raises_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text() + "extra: 1\n")
    with pytest.raises(PolicyError, match="unknown key 'extra'") as caught:
        DirectoryPolicySource(tmp_path).policy_for("octo-org/app", "42")
    assert caught.value.line == 8


@pytest.mark.parametrize(
    "repository", ["../etc/passwd", "octo-org/..", "octo-org/.", "/abs/path", "octo-org", "a/b/c"]
)
def test_repository_names_that_could_escape_the_directory_are_refused(
    tmp_path: Path, repository: str
) -> None:
    with pytest.raises(PolicySourceError, match="owner/name"):
        DirectoryPolicySource(tmp_path / "policies").policy_for(repository, "1")


def test_unreadable_directory_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "octo-org").write_text("a file where a directory should be")
    with pytest.raises(PolicySourceError, match="cannot be read"):
        DirectoryPolicySource(tmp_path).policy_for("octo-org/app", "42")


def test_directory_contents_lists_exactly_the_files_the_source_reads(tmp_path: Path) -> None:
    read = write(tmp_path)
    ignored = {
        write(tmp_path, name="Upper.yml"): "lower-case paths: rename it to octo-org/upper.yml",
        write(tmp_path, name="other.yaml"): "only .yml files: rename it to octo-org/other.yml",
        tmp_path / "top.yml": "not at <owner>/<name>.yml",
        tmp_path / "octo-org" / "deep" / "x.yml": "not at <owner>/<name>.yml",
    }
    (tmp_path / "top.yml").write_text("version: 1\n")
    (tmp_path / "octo-org" / "deep").mkdir()
    (tmp_path / "octo-org" / "deep" / "x.yml").write_text("version: 1\n")
    (tmp_path / "octo-org" / "notes.txt").write_text("not a policy")

    contents = directory_contents(tmp_path)

    assert contents.read == {read: "octo-org/app"}
    assert set(contents.ignored) == set(ignored)
    for path, why in ignored.items():
        assert why in contents.ignored[path], contents.ignored[path]
    source = DirectoryPolicySource(tmp_path)  # what the broker reads agrees
    assert source.policy_for("octo-org/app", "42") is not None
    assert source.policy_for("octo-org/Upper", "42") is None
    assert source.policy_for("octo-org/other", "42") is None
