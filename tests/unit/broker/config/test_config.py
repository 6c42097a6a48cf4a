from __future__ import annotations

from pathlib import Path

import pytest

from jobtoken.broker.config import ConfigError, SecretRef, load_config

EXAMPLE = Path(__file__).parents[4] / "examples" / "broker" / "broker.toml"


def test_the_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.server.public_url == "https://tokens.example.com"
    assert config.connectors["hubspot"].routes[0].scope == "crm.objects.contacts.read"
    assert config.connectors["legacy-ftp"].kind == "passthrough"
    assert config.keys.master_key == SecretRef(
        "the master key", file=Path("/run/secrets/jobtoken-master-key")
    )


def test_the_example_config_needs_no_secret_for_optional_features() -> None:
    config = load_config(EXAMPLE)
    assert config.oidc.audience == ""
    assert config.audience == config.server.public_url
    assert config.clients == ()
    assert config.webhook.secret is None


def test_an_empty_file_gives_safe_defaults(tmp_path: Path) -> None:
    config = load_config(_path(tmp_path, ""))
    assert config.server.host == "127.0.0.1"
    assert config.store.kind == "sqlite"
    assert config.store.path == tmp_path / "jobtoken-broker.db"
    assert config.oidc.issuers == ("https://token.actions.githubusercontent.com",)
    assert config.oidc.leeway_seconds == 30
    assert config.keys.signing_algorithm == "ES256"
    assert config.connectors == {}
    assert config.audience == "http://127.0.0.1:8080"


def _path(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broker.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nprot = 1\n", r"\[server\] unknown key 'prot'"),
        ("[sever]\n", r"toml: unknown table \[sever\]; did you mean \[server\]\?$"),
        ("[keys]\nmaster_key = 'abc'\n", "secrets are never written in the config file"),
        ("[webhook]\nsecret = 'abc'\n", "secrets are never written in the config file"),
        ("[keys]\nmaster_key_file = 'a'\nmaster_key_env = 'B'\n", "not both"),
        ("[server]\nport = '80'\n", "port must be an integer"),
        ("[server]\nport = true\n", "port must be an integer"),
        ("[server]\nport = 70000\n", "between 0 and 65535"),
        ("[oidc]\nleeway_seconds = 61\n", "between 0 and 60"),
        ("[oidc]\nissuers = ['http://token.example']\n", "must be https"),
        ("[oidc]\nloopback_test_issuers = ['http://10.0.0.1:80']\n", "not on loopback"),
        ("[server]\npublic_url = 'http://tokens.example.com'\n", "https://"),
        ("[store]\nkind = 'postgres'\n", "dsn_file or dsn_env"),
        ("[connectors.x]\nkind = 'passthrough'\n", r"\[connectors.x\].*allow_passthrough"),
        ("[connectors.x]\nmaxttl = 5\n", "unknown key 'maxttl'"),
        (
            "[connectors.x]\nbase_url='https://a'\n[[connectors.x.routes]]\npath='/a/../b'\nscope='s'\n",
            "not a plain segment",
        ),
        ("[[introspection_clients]]\nid = 'a'\n", "set secret_file or secret_env"),
        ("not toml = = \n", "not valid TOML"),
    ],
)
def test_invalid_settings_are_errors_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_path(tmp_path, text))


def test_secret_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("  value\n")
    config = load_config(_path(tmp_path, "[keys]\nmaster_key_file = 'key'\n"))
    assert config.keys.master_key is not None
    assert config.keys.master_key.read() == "value"


def test_a_secret_from_an_empty_environment_variable_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBTOKEN_TEST_EMPTY", "  ")
    with pytest.raises(ConfigError, match="JOBTOKEN_TEST_EMPTY"):
        SecretRef("the webhook secret", env="JOBTOKEN_TEST_EMPTY").read()


def test_an_oversized_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        load_config(_path(tmp_path, "#" * (1024 * 1024 + 1)))


def test_a_minted_connector_verified_offline_defaults_to_a_shorter_lifetime(
    tmp_path: Path,
) -> None:
    config = load_config(
        _path(
            tmp_path,
            '[connectors.offline]\nkind = "minted"\n'
            '[connectors.proxied]\nkind = "minted"\nbase_url = "https://api.example.com"\n'
            '[connectors.pinned]\nkind = "minted"\nmax_ttl_seconds = 900\n',
        )
    )
    assert config.connectors["offline"].max_ttl == 300  # only its TTL bounds it after job end
    assert config.connectors["proxied"].max_ttl == 900  # the proxy refuses it at job end
    assert config.connectors["pinned"].max_ttl == 900
