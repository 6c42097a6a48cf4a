from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from jobtoken.broker.assembly import Broker
from jobtoken.broker.config import ConfigError, load_config


def _config(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    (tmp_path / "client.secret").write_text("s3cret-client")
    (tmp_path / "policies").mkdir(exist_ok=True)
    path = tmp_path / "broker.toml"
    path.write_text(
        '[keys]\nmaster_key_file = "master.key"\n[store]\npath = "b.db"\n'
        '[[introspection_clients]]\nid = "rs"\nsecret_file = "client.secret"\n' + extra
    )
    return path


def test_a_broker_starts_with_a_first_signing_key(tmp_path: Path) -> None:
    broker = Broker.from_config(load_config(_config(tmp_path)))
    try:
        assert len(broker.keys.jwks()["keys"]) == 1
        assert broker.keys.jwks()["keys"][0]["alg"] == "ES256"
    finally:
        broker.close()


def test_clients_authenticate_only_with_their_exact_secret(tmp_path: Path) -> None:
    broker = Broker.from_config(load_config(_config(tmp_path)))
    try:
        assert broker.authenticate_client("rs", "s3cret-client") is not None
        assert broker.authenticate_client("rs", "s3cret-clien") is None
        assert broker.authenticate_client("rs", "s3cret-client ") is None
        assert broker.authenticate_client("other", "s3cret-client") is None
    finally:
        broker.close()


def test_a_missing_master_key_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "broker.toml"
    path.write_text("")
    with pytest.raises(ConfigError, match="master_key_file or master_key_env"):
        Broker.from_config(load_config(path))


def test_a_github_policy_source_needs_a_token(tmp_path: Path) -> None:
    path = _config(tmp_path, '[policy]\nsource = "github"\n')
    with pytest.raises(ConfigError, match="github_token_file or github_token_env"):
        Broker.from_config(load_config(path))


def test_a_wrong_master_key_cannot_open_the_stored_signing_key(tmp_path: Path) -> None:
    path = _config(tmp_path)
    Broker.from_config(load_config(path)).close()
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(ConfigError, match="does not hold"):
        Broker.from_config(load_config(path))


def test_the_example_config_assembles_with_only_a_master_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = Path(__file__).parents[3] / "examples" / "broker" / "broker.toml"
    text = example.read_text().replace(
        'master_key_file = "/run/secrets/jobtoken-master-key"', 'master_key_file = "master.key"'
    )
    (tmp_path / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    path = tmp_path / "broker.toml"
    path.write_text(text)
    monkeypatch.delenv("JOBTOKEN_WEBHOOK_SECRET", raising=False)
    broker = Broker.from_config(load_config(path))
    try:
        assert broker.webhook_secret is None
        assert broker.clients == {}
        assert broker.config.audience == "https://tokens.example.com"
    finally:
        broker.close()
