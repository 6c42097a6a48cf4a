"""``jobtoken[broker]`` from the built wheel, in a fresh venv, does what the README says:
``broker init``, ``broker check`` and ``broker serve`` work, with nothing of the source
tree on the path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.loopback import free_port, stop_process, wait_until_healthy
from support.wheelhouse import ROOT, clean_env, fresh_venv


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    """A fresh venv with ``jobtoken[broker]`` installed from the wheelhouse (module-wide)."""
    return fresh_venv(tmp_path_factory.mktemp("venv") / "venv", wheelhouse, "jobtoken[broker]")


def _jobtoken(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "jobtoken"), *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=cwd, env=clean_env(),
    )  # fmt: skip


def test_the_venv_runs_the_installed_wheel_not_the_source_tree(venv: Path, tmp_path: Path) -> None:
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import jobtoken, uvicorn; print(jobtoken.__file__)"],
        capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path, env=clean_env(),
    )  # fmt: skip
    module = Path(found.stdout.strip())
    assert module.is_relative_to(venv / "lib")
    assert not module.is_relative_to(ROOT)
    assert not any((venv / "lib").glob("python*/site-packages/__editable__*"))


def test_init_check_and_serve_work_from_the_installed_wheel(venv: Path, tmp_path: Path) -> None:
    directory = tmp_path / "broker"
    init = _jobtoken(venv, tmp_path, "broker", "init", str(directory))
    assert init.returncode == 0, init.stderr
    assert "jobtoken broker check --config" in init.stdout  # it names the next commands

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = directory / "broker.toml"
    text = config.read_text()
    text = text.replace('public_url = "https://tokens.example.com"', f'public_url = "{url}"')
    config.write_text(text.replace("port = 8080", f"port = {port}"))

    checked = _jobtoken(venv, tmp_path, "broker", "check", "--config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 error(s)" in checked.stdout

    with (tmp_path / "serve.log").open("wb") as log:
        serve = subprocess.Popen(
            [str(venv / "bin" / "jobtoken"), "broker", "serve", "--config", str(config)],
            stdout=log, stderr=log, cwd=tmp_path, env=clean_env(),
        )  # fmt: skip
    try:
        wait_until_healthy(serve, f"{url}/healthz", name="the installed broker", timeout=30)
    finally:
        stop_process(serve)
    assert (directory / "broker.db").exists()  # serve created its store where the config says
