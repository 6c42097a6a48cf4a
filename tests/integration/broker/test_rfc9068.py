"""RFC 9068 against the real broker process: Node's ``jose`` (a verifier nobody here
wrote) checks a minted token through the broker's JWKS (``createRemoteJWKSet``),
including ``typ: at+jwt`` and the ``client_id`` that RFC 9068 §2.2 requires."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from support.broker_process import REPO_ID, BrokerProcess

NODE_MODULES = Path(__file__).resolve().parents[3] / ".venv" / "node" / "node_modules"
VERIFY = """
const { createRemoteJWKSet, jwtVerify } = require("jose");
const [token, jwks, issuer, audience] = process.argv.slice(1);
jwtVerify(token, createRemoteJWKSet(new URL(jwks)), { issuer, audience, typ: "at+jwt" })
  .then((r) => console.log(JSON.stringify(r.payload)))
  .catch((e) => { console.error(e.code || e.name); process.exit(1); });
"""


def _node_jose() -> str:
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "jose").is_dir():
        pytest.skip(f"needs node and npm's jose in {NODE_MODULES} (`make test` installs it)")
    return node


def _minted(broker: BrokerProcess) -> str:
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": broker.id_token(),
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "resource": "contacts",
        "scope": "contacts.read",
    }
    response = requests.post(f"{broker.url}/token", data=form, timeout=10)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _verify(node: str, broker: BrokerProcess, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, "-e", VERIFY, token, f"{broker.url}/.well-known/jwks.json", broker.url, "contacts"],
        env={"NODE_PATH": str(NODE_MODULES), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_node_jose_verifies_a_minted_token_with_its_client_id(broker: BrokerProcess) -> None:
    node = _node_jose()
    verified = _verify(node, broker, _minted(broker))
    assert verified.returncode == 0, verified.stderr
    payload = json.loads(verified.stdout)
    assert payload["client_id"] == f"github:repository:{REPO_ID}"
    assert payload["aud"] == "contacts"
    assert payload["scope"] == "contacts.read"


def test_node_jose_refuses_a_token_altered_after_signing(broker: BrokerProcess) -> None:
    node = _node_jose()
    header, payload, signature = _minted(broker).split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BA")
    refused = _verify(node, broker, f"{header}.{payload}.{flipped}")
    assert refused.returncode == 1
    assert "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" in refused.stderr
