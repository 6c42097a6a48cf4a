"""The start-up checks find every problem of one config in one run: unreadable
secrets, a missing policy directory or bad policy files, connectors without a
credential or with one the master key cannot open, and likely mistakes."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from jobtoken.broker.config import load_config
from jobtoken.broker.secrets.envelope import Envelope, MasterKey
from jobtoken.broker.setup.preflight import Finding, preflight
from jobtoken.broker.store import open_store

_BROKEN = """\
[server]
public_url = "https://tokens.example.com"
[keys]
master_key_file = "missing.key"
[oidc]
loopback_test_issuers = ["http://127.0.0.1:9"]
[[introspection_clients]]
id = "rs"
secret_file = "missing.secret"
[webhook]
secret_env = "JOBTOKEN_TEST_UNSET_WEBHOOK_SECRET"
[policy]
directory = "no-such-policies"
[connectors.ftp]
kind = "passthrough"
allow_passthrough = true
"""

_POLICY_WILDCARD = """\
version: 1
repository: o/r
repository_id: "1"
connectors:
  api:
    - scopes: [a.read]
      max_ttl: 5m
      when:
        event_name: "*"
"""


def test_every_problem_of_a_config_is_found_in_one_run(tmp_path: Path) -> None:
    (tmp_path / "broker.toml").write_text(_BROKEN)
    os.environ.pop("JOBTOKEN_TEST_UNSET_WEBHOOK_SECRET", None)
    findings = preflight(load_config(tmp_path / "broker.toml"))
    texts = [f"{f.level}: {f.text}" for f in findings]
    expected = [
        ("error: master key", "missing.key"),
        ("error: introspection client rs", "missing.secret"),
        ("error: webhook secret", "JOBTOKEN_TEST_UNSET_WEBHOOK_SECRET"),
        ("error: connector ftp: no credential stored", "connector set ftp"),
        ("error: policy: the directory", "no-such-policies"),
        ("warning: server.public_url is still the example's", ""),
        ("warning: oidc.loopback_test_issuers is set", ""),
    ]
    for start, detail in expected:
        assert any(t.startswith(start) and detail in t for t in texts), (start, texts)
    assert len(findings) == len(expected)


def _key_file(path: Path) -> MasterKey:
    raw = os.urandom(32)
    path.write_text(base64.b64encode(raw).decode())
    return MasterKey.from_text(base64.b64encode(raw).decode(), origin="test")


def test_bad_policies_and_a_credential_sealed_with_another_key_are_found(
    tmp_path: Path,
) -> None:
    _key_file(tmp_path / "master.key")
    other = _key_file(tmp_path / "other.key")
    (tmp_path / "broker.toml").write_text(
        '[server]\npublic_url = "https://tokens.corp.example"\n[keys]\n'
        'master_key_file = "master.key"\n[store]\npath = "b.db"\n'
        '[connectors.ftp]\nkind = "passthrough"\nallow_passthrough = true\n'
    )
    policies = tmp_path / "policies"
    (policies / "o").mkdir(parents=True)
    (policies / "o" / "r.yml").write_text(_POLICY_WILDCARD)
    (policies / "o" / "broken.yml").write_text("version: 1\nrepository: o/broken\nextra: 1\n")
    store = open_store("sqlite", path=tmp_path / "b.db")
    store.put_credential("ftp", Envelope(other, ()).encrypt("connector:ftp", b"ftp-secret"), 1)
    store.close()

    findings = preflight(load_config(tmp_path / "broker.toml"))
    texts = [f"{f.level}: {f.text}" for f in findings]
    assert any(
        t.startswith("error: connector ftp: its stored credential does not open") for t in texts
    )
    # every error of the broken file, in line order, not only the first
    broken = [t for t in texts if t.startswith("error: policy:") and "broken.yml" in t]
    assert [t.split("broken.yml:")[1].split(":")[0] for t in broken] == ["1", "1", "3"]
    assert "needs the key 'repository_id'" in " ".join(broken)
    assert any(
        t.startswith("warning: policy:") and "event_name: '*' matches every event" in t
        for t in texts
    )
    assert len(findings) == 5, texts
    assert "ftp-secret" not in "".join(texts)


def test_an_oauth_connector_not_connected_or_dead_is_an_error_naming_connect(
    tmp_path: Path,
) -> None:
    key = _key_file(tmp_path / "master.key")
    (tmp_path / "policies").mkdir()
    oauth = (
        '[connectors.{0}]\ncredential = "oauth2-refresh"\nbase_url = "https://api.example.com"\n'
        '[connectors.{0}.oauth]\nclient_id = "c"\ntoken_url = "https://login.example.com/t"\n'
    )
    (tmp_path / "broker.toml").write_text(
        '[server]\npublic_url = "https://tokens.corp.example"\n[keys]\n'
        'master_key_file = "master.key"\n[store]\npath = "b.db"\n'
        + oauth.format("crm")
        + oauth.format("dead")
        + oauth.format("fine")
    )
    store = open_store("sqlite", path=tmp_path / "b.db")
    envelope = Envelope(key, ())
    for name in ("crm", "dead", "fine"):
        store.put_credential(name, envelope.encrypt(f"connector:{name}", b"client-secret"), 1)
    build = lambda seq, prev: ("{}", "0" * 64)  # noqa: E731 (an audit record, not checked here)
    for name in ("dead", "fine"):
        store.put_grant(name, envelope.encrypt(f"grant:{name}", b"{}"), 0, 1, build)
    owner = "test"
    assert store.take_lease("dead", owner, 1, 0, 10**15)
    store.release_lease("dead", owner, state="needs_reauthorization", retry_at_ms=0, audit=None)
    store.close()

    findings = preflight(load_config(tmp_path / "broker.toml"))
    texts = [f"{f.level}: {f.text}" for f in findings if f.text.startswith("connector")]
    assert texts == [
        "error: connector crm is not connected; jobs asking for it are refused until "
        f"`jobtoken broker connect crm --config {tmp_path / 'broker.toml'} --port PORT` "
        "(PORT: the one in the redirect URL registered with the provider)",
        "error: connector dead needs re-authorization; jobs asking for it are refused until "
        f"`jobtoken broker connect dead --config {tmp_path / 'broker.toml'} --port PORT` "
        "(PORT: the one in the redirect URL registered with the provider)",
    ]


def _sealed_file_config(tmp_path: Path) -> Path:
    _key_file(tmp_path / "master.key")
    (tmp_path / "policies").mkdir()
    path = tmp_path / "broker.toml"
    path.write_text(
        '[server]\npublic_url = "https://tokens.corp.example"\n[keys]\n'
        'master_key_file = "master.key"\n[store]\npath = "b.db"\n'
        '[connectors.api]\ncredential_sealed_file = "api.sealed"\n'
    )
    return path


def test_a_sealed_credential_file_that_does_not_open_is_an_error_naming_it(
    tmp_path: Path,
) -> None:
    from nacl.public import PrivateKey

    from jobtoken.broker.secrets.seal_keys import SealKeys
    from jobtoken.broker.secrets.sealed_file import seal_credential

    config = load_config(_sealed_file_config(tmp_path))

    def about_connectors() -> list[Finding]:
        return [f for f in preflight(config) if not f.text.startswith("policy:")]

    (finding,) = about_connectors()  # no store yet: no seal key
    assert finding.level == "error"
    assert "api.sealed" in finding.text
    assert "jobtoken broker seal-key" in finding.text

    store = open_store("sqlite", path=tmp_path / "b.db")
    envelope = Envelope(MasterKey.from_text((tmp_path / "master.key").read_text(), origin="t"))
    _, public = SealKeys(store, envelope).ensure_current()
    sealed = tmp_path / "api.sealed"
    sealed.write_text(seal_credential(b"sk_live_x", bytes(PrivateKey.generate().public_key)))
    (finding,) = about_connectors()
    assert finding.level == "error"
    assert finding.text.startswith("connector api:")
    assert str(sealed) in finding.text
    assert "another broker" in finding.text

    sealed.write_text(seal_credential(b"sk_live_x", public))
    assert about_connectors() == []
    assert list(store.audit_rows()) == []  # checked, not used: nothing opened for use
    store.close()
