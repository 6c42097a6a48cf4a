"""``jobtoken seal``: a credential sealed to a broker's seal key, on a machine that has
only ``pip install jobtoken``. The command runs in this process (``support.in_process``);
that it needs none of the broker's libraries is checked in a fresh interpreter."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
from nacl.public import PrivateKey

from jobtoken.broker.secrets.sealed_file import open_credential, read_sealed_file, seal_key_id
from support.in_process import run_cli

SECRET = b"sk_live_LAPTOP_0123456789"


def _seal(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return run_cli(["seal", *args], stdin=stdin)


@pytest.fixture
def key() -> PrivateKey:
    return PrivateKey.generate()


def _public(key: PrivateKey) -> str:
    return base64.b64encode(bytes(key.public_key)).decode()


def test_a_credential_from_stdin_is_sealed_to_a_file_only_the_key_opens(
    tmp_path: Path, key: PrivateKey
) -> None:
    out = tmp_path / "api.sealed"
    done = _seal("--key", _public(key), "--output", str(out), stdin=SECRET + b"\n")
    assert done.returncode == 0, done.stderr
    assert SECRET not in out.read_bytes() + done.stdout + done.stderr
    assert seal_key_id(bytes(key.public_key)).encode() in done.stderr
    assert b"credential_sealed_file" in done.stderr
    assert open_credential(read_sealed_file(out), bytes(key)) == SECRET  # stripped


def test_a_credential_from_a_file_is_sealed_to_stdout(tmp_path: Path, key: PrivateKey) -> None:
    (tmp_path / "key.txt").write_bytes(SECRET)
    done = _seal("--key", _public(key), "--input", str(tmp_path / "key.txt"))
    assert done.returncode == 0, done.stderr
    (tmp_path / "out").write_bytes(done.stdout)
    assert open_credential(read_sealed_file(tmp_path / "out"), bytes(key)) == SECRET


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("--key", "bm90IGEga2V5"), SECRET, b"jobtoken broker seal-key"),
        (("--key", "KEY"), b"  \n", b"the credential is empty"),
        (("--key", "KEY", "--input", "/nonexistent/cred"), b"", b"/nonexistent/cred"),
    ],
)
def test_a_bad_key_or_input_fails_with_what_to_fix(
    key: PrivateKey, args: tuple[str, ...], stdin: bytes, message: bytes
) -> None:
    args = tuple(_public(key) if a == "KEY" else a for a in args)
    done = _seal(*args, stdin=stdin)
    assert done.returncode == 1
    assert message in done.stderr
    assert done.stdout == b""


def test_there_is_no_way_to_pass_the_credential_in_argv(key: PrivateKey) -> None:
    done = _seal("--key", _public(key), "--credential", "sk_live_argv")
    assert done.returncode == 2


def test_it_needs_none_of_the_brokers_libraries(tmp_path: Path, key: PrivateKey) -> None:
    """A plain `pip install jobtoken` (no `broker` extra) is enough to seal."""
    (tmp_path / "key.txt").write_bytes(SECRET)
    probe = (
        "import sys\n"
        "from jobtoken.cli import main\n"
        f"code = main(['seal', '--key', {_public(key)!r}, '--input', {str(tmp_path / 'key.txt')!r},"
        f" '--output', {str(tmp_path / 'out')!r}])\n"
        "heavy = ['starlette', 'uvicorn', 'requests', 'httpx', 'jobtoken.broker.store',"
        " 'jobtoken.broker.assembly', 'tomllib', 'tomli']\n"
        "print(code, [m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "0 []", done.stderr
