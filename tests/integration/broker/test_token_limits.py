"""Through the real broker process: a token shorter than the ttl asked for says which
limit applied (``ttl_limited_by``), and a scope the connector lacks is named as the
broker operators' to add, not the repository admins'."""

from __future__ import annotations

from pathlib import Path

from support.broker_process import serving_broker

SHORT_CONNECTOR = """\
[connectors.short]
scopes = ["short.read"]
max_ttl_seconds = 120
"""
SHORT_RULE = """\
  short:
    - scopes: [short.read]
      max_ttl: 10m
"""


def test_the_answer_names_the_limit_that_made_the_token_shorter(tmp_path: Path) -> None:
    with serving_broker(tmp_path, extra_config=SHORT_CONNECTOR, extra_policy=SHORT_RULE) as broker:
        by_policy = broker.exchange(ttl="3600")  # contacts: the policy's 10m, connector 900 s
        by_connector = broker.exchange("short.read", resource="short", ttl="3600")
        in_full = broker.exchange(ttl="300")
    assert by_policy.status_code == 200, by_policy.text
    assert (by_policy.json()["expires_in"], by_policy.json()["ttl_limited_by"]) == (600, "policy")
    assert by_connector.status_code == 200, by_connector.text
    assert by_connector.json()["expires_in"] == 120
    assert by_connector.json()["ttl_limited_by"] == "connector"
    assert in_full.json()["expires_in"] == 300
    assert "ttl_limited_by" not in in_full.json()


def test_a_scope_the_connector_lacks_is_named_as_the_broker_operators(tmp_path: Path) -> None:
    with serving_broker(tmp_path) as broker:
        refused = broker.exchange("contacts.delete")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
    description = refused.json()["error_description"]
    assert "scope contacts.delete is not a scope of connector contacts" in description
    assert "(its scopes: contacts.read contacts.write)" in description
    assert "the broker's operators configure the connector, not the repository admins" in (
        description
    )
