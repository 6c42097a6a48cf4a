"""deploy/container/Containerfile builds (buildah, no daemon) from the wheelhouse, and
the image serves as docs/deploy.md runs it: a non-root user, config and secrets on
read-only mounts, the store on its volume, and nothing written anywhere else."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.buildah import BuildahError, buildah, ensure_base_image, missing_tools
from support.loopback import free_port, stop_process, wait_until_healthy
from support.wheelhouse import ROOT

CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"
CONFIG = ROOT / "deploy" / "container" / "broker.toml"
USER = "10001:10001"
#: what a runtime itself puts in a container (mount points, name resolution)
RUNTIME_PATHS = ("/run", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname")

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def image(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image built from this tree's wheelhouse, removed after the module."""
    missing = missing_tools()
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} not found: the container image is not built "
            "(.ci/run installs them as root; or: apt-get install buildah debootstrap)"
        )
    if os.geteuid() != 0:
        pytest.skip("buildah builds here as root only (CI runs as root)")
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the wheelhouse must be Python 3.11's, the image's Python: run with 3.11")
    context = tmp_path_factory.mktemp("image-context")
    shutil.copytree(wheelhouse, context / "wheels")
    name = f"localhost/jobtoken-broker:test-{secrets.token_hex(4)}"
    try:
        base = ensure_base_image()
        buildah(
            "bud", "--quiet", "--format", "docker", "--build-arg", f"PYTHON_IMAGE={base}",
            "--tag", name, "--file", str(CONTAINERFILE), str(context),
        )  # fmt: skip
    except BuildahError as exc:
        pytest.fail(str(exc))
    try:
        yield name
    finally:
        buildah("rmi", name)


def _image_config(image: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", image))
    return dict(config["Docker"]["config"])


def test_the_image_runs_serve_as_a_non_root_user_with_a_health_check(image: str) -> None:
    config = _image_config(image)
    assert config["User"] == USER
    assert config["Entrypoint"] == ["jobtoken", "broker", "serve"]
    assert config["Cmd"] == ["--config", "/etc/jobtoken/broker.toml"]
    assert "/livez" in " ".join(config["Healthcheck"]["Test"])
    # no VOLUME: a forgotten store mount must fail on the read-only root, not land on an
    # anonymous volume (buildah 1.28 also mounts an image's VOLUME over a --volume there)
    assert not config.get("Volumes")


def _volumes(tmp_path: Path, port: int) -> dict[str, Path]:
    """Config, secrets and store directories as an operator would mount them."""
    volumes = {
        "/etc/jobtoken": tmp_path / "config",
        "/run/secrets/jobtoken": tmp_path / "secrets",
        "/var/lib/jobtoken": tmp_path / "store",
    }
    for directory in volumes.values():
        directory.mkdir()
    (volumes["/etc/jobtoken"] / "policies").mkdir()
    text = CONFIG.read_text().replace(
        'public_url = "https://tokens.example.com"', f'public_url = "http://127.0.0.1:{port}"'
    )
    (volumes["/etc/jobtoken"] / "broker.toml").write_text(
        text.replace("port = 8080", f"port = {port}")
    )
    for name, value in (
        ("master.key", base64.b64encode(secrets.token_bytes(32)).decode()),
        ("introspection-client.secret", secrets.token_urlsafe(32)),
    ):
        path = volumes["/run/secrets/jobtoken"] / name
        path.write_text(value + "\n")
        os.chown(path, 10001, 10001)
        path.chmod(0o400)
    os.chown(volumes["/var/lib/jobtoken"], 10001, 10001)
    return volumes


def _changed_paths(container: str, since: float) -> list[str]:
    """Paths of the container's own file system modified after ``since``."""
    root = Path(buildah("mount", container).strip())
    try:
        changed = []
        for directory, subdirs, files in os.walk(root):
            subdirs[:] = [
                d for d in subdirs if not (directory == str(root) and d in ("proc", "sys", "dev"))
            ]
            for name in [*subdirs, *files]:
                path = Path(directory) / name
                if path.lstat().st_mtime > since:
                    changed.append("/" + str(path.relative_to(root)))
        return changed
    finally:
        buildah("umount", container)


def test_the_image_serves_from_its_volumes_and_writes_nothing_else(
    image: str, tmp_path: Path
) -> None:
    port = free_port()
    volumes = _volumes(tmp_path, port)
    container = buildah("from", "--quiet", image).strip()
    try:
        started = time.time()
        time.sleep(1.1)  # mtimes after this are the broker's
        mounts = [
            arg
            for inside, outside in volumes.items()
            for arg in (
                "--volume",
                f"{outside}:{inside}" + ("" if inside == "/var/lib/jobtoken" else ":ro"),
            )
        ]
        config = _image_config(image)
        with (tmp_path / "serve.log").open("wb") as log:
            serve = subprocess.Popen(
                ["buildah", "run", "--isolation", "chroot", "--user", USER, *mounts, container,
                 "--", *config["Entrypoint"], *config["Cmd"]],
                stdout=log, stderr=log,
            )  # fmt: skip
        try:
            wait_until_healthy(
                serve, f"http://127.0.0.1:{port}/healthz", name="the image", timeout=60
            )
            probe = [
                part.replace(":8080/", f":{port}/") for part in config["Healthcheck"]["Test"][1:]
            ]
            health = subprocess.run(
                ["buildah", "run", "--isolation", "chroot", "--user", USER, container,
                 "--", *probe],
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip
            assert health.returncode == 0, health.stderr  # the HEALTHCHECK command passes
        finally:
            stop_process(serve)
        assert (volumes["/var/lib/jobtoken"] / "broker.db").exists()
        written = [p for p in _changed_paths(container, started) if not p.startswith(RUNTIME_PATHS)]
        assert written == []  # a read-only root file system would have held
    finally:
        buildah("rm", container)
