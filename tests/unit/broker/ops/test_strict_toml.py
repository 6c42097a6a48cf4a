"""The strict TOML table reader: types checked, unknown keys refused by name, nested
tables read the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobtoken.broker.config.toml_table import Table
from jobtoken.broker.ops.strict_toml import StrictTable, checked, tomllib


def test_an_unknown_key_is_refused_naming_it_and_its_table() -> None:
    table = StrictTable({"name": "x", "tokn_url": "y"}, "slack")
    with pytest.raises(ValueError, match=r"^\[slack\] unknown key 'tokn_url'$"):
        checked(table, lambda t: t.text("name", ""))


def test_a_key_of_the_wrong_type_is_refused_naming_it() -> None:
    table = StrictTable({"routes": "GET /"}, "slack")
    with pytest.raises(ValueError, match=r"\[slack\] routes must be an array of tables"):
        table.tables("routes")
    with pytest.raises(ValueError, match=r"\[slack\] query must be a list of strings"):
        StrictTable({"query": ["a", 1]}, "slack").strings("query", ())


def test_nested_tables_are_named_by_their_path_and_read_strictly() -> None:
    document = tomllib.loads('[a]\n[[a.routes]]\npath = "/x"\nsocpe = "s"\n')
    routes = StrictTable(document, "").table("a").tables("routes")
    assert [route.where for route in routes] == ["a.routes[0]"]
    with pytest.raises(ValueError, match=r"\[a\.routes\[0\]\] unknown key 'socpe'"):
        checked(routes[0], lambda t: t.text("path", ""))


def test_only_the_config_reader_calls_an_unknown_key_an_inline_secret(tmp_path: Path) -> None:
    # the catalogue's reader says "unknown key"; the config's says where secrets go
    with pytest.raises(ValueError, match="unknown key 'client_secret'"):
        StrictTable({"client_secret": "x"}, "t").done()
    config = Table({"oauth": {"client_secret": "x"}}, "connectors.c", tmp_path)
    nested = config.table("oauth")
    assert isinstance(nested, Table)  # a nested config table keeps paths and secret refs
    with pytest.raises(ValueError, match="secrets are never written in the config file"):
        nested.done()


def test_an_unknown_key_or_table_is_named_with_the_closest_known_one() -> None:
    root = StrictTable({"oidcc": {"issuers": []}, "server": {}}, "")
    with pytest.raises(ValueError, match=r"^unknown table \[oidcc\]; did you mean \[oidc\]\?$"):
        checked(root, lambda t: (t.table("oidc"), t.table("server")))
    table = StrictTable({"scope": ["a"], "routes": {"x": 1}}, "connectors.my")
    with pytest.raises(ValueError, match=r"^\[connectors\.my\] unknown key 'scope'; did you mean "):
        checked(table, lambda t: t.strings("scopes", ()))
    far = StrictTable({"zzz": 1}, "server")
    with pytest.raises(ValueError, match=r"^\[server\] unknown key 'zzz'$"):
        checked(far, lambda t: t.integer("port", 1, 1, 2))
