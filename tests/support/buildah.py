"""Building and running the broker's container image with buildah, with no daemon.

No container registry is reachable from this machine or CI, so the image's base (a
Python 3.11 image, ``PYTHON_IMAGE`` in ``deploy/container/Containerfile``) is made
here: ``debootstrap`` writes a minimal Debian bookworm with ``python3`` and
``python3-venv`` (the same Python 3.11 that the official ``python:3.11-slim-bookworm``
image has), and buildah commits it as :data:`BASE_IMAGE`, once per machine (it stays
in buildah's storage). Every ``RUN`` uses chroot isolation: crun cannot create a
container here (cgroups in hybrid mode), and chroot needs no daemon.

``buildah run`` shares the host's network, so a broker in the container answers on
loopback, on the port its config names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["BASE_IMAGE", "BuildahError", "buildah", "ensure_base_image", "missing_tools"]

BASE_IMAGE = "localhost/jobtoken-test/python:3.11-bookworm"
BUILD_TIMEOUT = 900


class BuildahError(Exception):
    """A buildah or debootstrap command failed; the message holds its output's tail."""


def missing_tools() -> list[str]:
    """The commands this module needs that are not on PATH (empty: it can build)."""
    needed = ["buildah"]
    if not _image_exists(BASE_IMAGE):
        needed.append("debootstrap")
    return [tool for tool in needed if shutil.which(tool) is None]


def buildah(*args: str, timeout: float = BUILD_TIMEOUT) -> str:
    """Run ``buildah ARGS`` (chroot isolation); its stdout, or :class:`BuildahError`."""
    done = subprocess.run(
        ["buildah", *args], capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "BUILDAH_ISOLATION": "chroot"},
    )  # fmt: skip
    if done.returncode != 0:
        raise BuildahError(f"buildah {args[0]} failed: {(done.stderr or done.stdout)[-3000:]}")
    return done.stdout


def ensure_base_image() -> str:
    """:data:`BASE_IMAGE`, made with debootstrap if buildah's storage lacks it."""
    if _image_exists(BASE_IMAGE):
        return BASE_IMAGE
    with tempfile.TemporaryDirectory(prefix="jobtoken-base-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv",
             "bookworm", str(rootfs)],
            capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise BuildahError(f"debootstrap failed: {(done.stderr or done.stdout)[-3000:]}")
        container = buildah("from", "scratch").strip()
        try:
            mounted = buildah("mount", container).strip()
            subprocess.run(["cp", "-a", f"{rootfs}/.", mounted], check=True, timeout=300)
            buildah("umount", container)
            buildah(
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                container,
            )
            buildah("commit", "--quiet", container, BASE_IMAGE)
        finally:
            buildah("rm", container)
    return BASE_IMAGE


def _image_exists(name: str) -> bool:
    if shutil.which("buildah") is None:
        return False
    done = subprocess.run(
        ["buildah", "inspect", "--type", "image", name],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode == 0
