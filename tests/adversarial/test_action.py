# ruff: noqa: E501 -- the attack tables keep one case per line (`# fmt: skip`)
"""A hostile broker (or OIDC endpoint) against the action: redirects, an http downgrade,
huge or trickled answers, a token other than the one asked for, duplicate keys, non-JSON,
a hang. The action fails closed: exit 1, no output or env file written, the token
never printed (only in its ``::add-mask::`` line), no workflow command smuggled in."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobtoken.action.exchange import run_exchange
from support.adversary import HostileServer, http_response
from support.fake_broker import FakeBroker
from support.oidc_issuer import FakeOidcIssuer

TOKEN = "jbt_" + "S3cr3tT0k3n" * 4
COMMAND_LINE = re.compile(r"^\s*::([A-Za-z-]+)|##\[")


@pytest.fixture(scope="module")
def issuer() -> Iterator[FakeOidcIssuer]:
    with FakeOidcIssuer() as started:
        yield started


def _run(tmp_path: Path, issuer: FakeOidcIssuer, broker_url: str, timeout: str = "3s") -> tuple[int, str, dict[str, str]]:  # fmt: skip
    files = {name: tmp_path / name.lower() for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")}  # fmt: skip
    for path in files.values():
        path.write_text("")
    env = {
        **issuer.runner_env(),
        **{name: str(path) for name, path in files.items()},
        "INPUT_BROKER_URL": broker_url,
        "INPUT_CONNECTOR": "hubspot",
        "INPUT_SCOPES": "crm.read",
        "INPUT_TTL": "600",
        "INPUT_TIMEOUT": timeout,
        "INPUT_EXPORT_ENV": "HUBSPOT_TOKEN",
    }
    out = io.StringIO()
    code = run_exchange(env, out)
    return code, out.getvalue(), {name: path.read_text() for name, path in files.items()}


def _assert_failed_closed(code: int, log: str, written: dict[str, str], *secrets: str) -> None:
    assert code == 1
    assert written["GITHUB_OUTPUT"] == ""
    assert written["GITHUB_ENV"] == ""
    for secret in secrets:
        assert all(line.startswith("::add-mask::") for line in log.splitlines() if secret in line)
        assert secret not in written["GITHUB_STEP_SUMMARY"]
    commands = {m.group(1) for line in log.splitlines() if (m := COMMAND_LINE.match(line))}
    assert commands <= {"error", "add-mask", "group", "endgroup", "warning"}, log


def _body(**changes: object) -> bytes:
    body = {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "expires_in": 600,
        "scope": "crm.read",
        "token_id": "tok_1",
        **changes,
    }
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


JSON = ("Content-Type: application/json",)
RAW_ANSWERS = [
    pytest.param(http_response("302 Found", headers=("Location: http://127.0.0.2:9/token",)), id="redirect-other-host"),
    pytest.param(http_response("307 Temporary Redirect", headers=("Location: http://tokens.example.com/token",)), id="redirect-http-downgrade"),
    pytest.param(http_response("308 Permanent Redirect", headers=("Location: /token2",)), id="redirect-same-host-post"),
    pytest.param(http_response("200 OK", b'{"pad": "' + b"x" * (5 * 1024 * 1024) + b'"}', JSON), id="body-5-mib"),
    pytest.param(http_response("200 OK", b"<html>" + TOKEN.encode() + b"</html>", ("Content-Type: text/html",)), id="non-json"),
    pytest.param(http_response("200 OK", b"[" + json.dumps(TOKEN).encode() + b"]", JSON), id="json-array"),
    pytest.param(http_response("200 OK", _body(scope="crm.read crm.admin"), JSON), id="scopes-more-than-asked"),
    pytest.param(http_response("200 OK", _body(scope="crm.admin"), JSON), id="scopes-other-than-asked"),
    pytest.param(http_response("200 OK", _body(expires_in=10**7), JSON), id="expires-in-beyond-ttl"),
    pytest.param(http_response("200 OK", _body(expires_in=-5), JSON), id="expires-in-negative"),
    pytest.param(http_response("200 OK", _body(expires_in="600"), JSON), id="expires-in-string"),
    pytest.param(http_response("200 OK", _body(token_type="mac"), JSON), id="token-type-other"),
    pytest.param(http_response("200 OK", _body(access_token=TOKEN + "\n::set-env name=X::1"), JSON), id="token-with-newline-command"),
    pytest.param(http_response("200 OK", _body(access_token=""), JSON), id="token-empty"),
    pytest.param(http_response("200 OK", _body(issued_token_type="urn:ietf:params:oauth:token-type:refresh_token"), JSON), id="issued-type-refresh-token"),
    pytest.param(http_response("400 Bad Request", b'{"error":"invalid_scope","error_description":"x\\n::add-mask::y\\n##[error]z ::set-output name=t::v"}', JSON), id="error-description-commands"),
    pytest.param(http_response("400 Bad Request", b'{"error":"::error::x\\ny","error_description":"d"}', JSON), id="error-code-command"),
]  # fmt: skip


@pytest.mark.parametrize("raw", RAW_ANSWERS)
def test_a_hostile_broker_answer_fails_closed(
    tmp_path: Path, issuer: FakeOidcIssuer, raw: bytes
) -> None:
    with HostileServer(raw=raw) as server:
        code, log, written = _run(tmp_path, issuer, server.url)
    _assert_failed_closed(code, log, written, TOKEN)
    assert server.requests[0] == "/token"
    assert "/token2" not in server.requests


def test_a_json_answer_with_duplicate_keys_fails_closed(
    tmp_path: Path, issuer: FakeOidcIssuer
) -> None:
    body = _body()[:-1] + b', "scope": "crm.admin", "scope": "crm.read"}'
    with HostileServer(raw=http_response("200 OK", body, JSON)) as server:
        code, log, written = _run(tmp_path, issuer, server.url)
    _assert_failed_closed(code, log, written, TOKEN)
    assert "repeats a key" in log


def test_a_trickled_answer_is_cut_by_the_steps_timeout(
    tmp_path: Path, issuer: FakeOidcIssuer
) -> None:
    raw = http_response("200 OK", _body(), JSON)
    with HostileServer(raw=raw, trickle_seconds=1.0) as server:
        started = time.monotonic()
        code, log, written = _run(tmp_path, issuer, server.url, timeout="2s")
        elapsed = time.monotonic() - started
    _assert_failed_closed(code, log, written, TOKEN)
    assert elapsed < 4.5


def test_a_hanging_broker_is_cut_by_the_steps_timeout(
    tmp_path: Path, issuer: FakeOidcIssuer
) -> None:
    with HostileServer(raw=http_response("200 OK", _body(), JSON), hang_seconds=8) as server:
        started = time.monotonic()
        code, log, written = _run(tmp_path, issuer, server.url, timeout="2s")
        elapsed = time.monotonic() - started
    _assert_failed_closed(code, log, written, TOKEN)
    assert elapsed < 4.5


def test_a_hanging_oidc_endpoint_is_cut_by_the_steps_timeout(
    tmp_path: Path, oidc_issuer: FakeOidcIssuer
) -> None:
    oidc_issuer.slow_seconds = 8.0
    oidc_issuer.fail_next("slow", count=4)
    with FakeBroker() as broker:
        started = time.monotonic()
        code, log, written = _run(tmp_path, oidc_issuer, broker.url, timeout="2s")
        elapsed = time.monotonic() - started
        assert broker.requests == []  # no ID token, no exchange
    _assert_failed_closed(code, log, written)
    assert elapsed < 4.5


def test_a_well_behaved_broker_passes(tmp_path: Path, issuer: FakeOidcIssuer) -> None:
    """The control: the same step against an honest answer writes its outputs."""
    with HostileServer(raw=http_response("200 OK", _body(), JSON)) as server:
        code, log, written = _run(tmp_path, issuer, server.url)
    assert code == 0, log
    assert TOKEN in written["GITHUB_OUTPUT"]
    assert f"::add-mask::{TOKEN}" in log
