# ruff: noqa: E501 -- the attack tables keep one case per line (`# fmt: skip`)
"""Hostile ``POST /token`` parameters with a valid ID token: scope strings, repeated
and conflicting parameters, grant and token types, ``ttl`` forms, and shell or
workflow-command payloads in every text field. Each gets its exact HTTP status, OAuth
error and audit reason; nothing is issued, nothing is executed, and the error text
comes back neutralized (RFC 6749's charset, no ``::``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from support.adversary import StoreCounts, last_audit

from .conftest import App

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
FORM = "application/x-www-form-urlencoded"


def _form(app: App, **changes: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": app.process.id_token(),
        "subject_token_type": ID_TOKEN_TYPE,
        "resource": "contacts",
        "scope": "contacts.read",
        **changes,
    }
    return {k: v for k, v in form.items() if v is not None}


def _refused(app: App, status: int, error: str, reason: str, **post: Any) -> dict[str, Any]:
    """POST /token; assert the refusal, its audit record, and that nothing was issued."""
    before = StoreCounts.of(app.process.db_path)
    response = app.client.post("/token", **post)
    after = StoreCounts.of(app.process.db_path)
    body: dict[str, Any] = response.json()
    assert (response.status_code, body.get("error")) == (status, error), body
    assert "access_token" not in body
    assert DESCRIPTION.fullmatch(body["error_description"])
    assert "::" not in body["error_description"]
    assert (after.tokens, after.denied) == (before.tokens, before.denied + 1)
    assert (last_audit(app.process.db_path)["decision"], last_audit(app.process.db_path)["reason"]) == ("denied", reason)  # fmt: skip
    return body


SCOPES = [
    pytest.param("contacts.read  contacts.write", "malformed_scope", id="double-space"),
    pytest.param(" contacts.read", "malformed_scope", id="leading-space"),
    pytest.param("contacts.read ", "malformed_scope", id="trailing-space"),
    pytest.param("contacts.read,contacts.write", "unknown_scope", id="comma"),
    pytest.param("contacts.read\ncontacts.write", "malformed_scope", id="newline"),
    pytest.param("contacts.read\r\ncontacts.write", "malformed_scope", id="crlf"),
    pytest.param("contacts.read\tcontacts.write", "malformed_scope", id="tab"),
    pytest.param("*", "unknown_scope", id="star"),
    pytest.param("contacts.*", "unknown_scope", id="glob"),
    pytest.param("CONTACTS.READ", "unknown_scope", id="upper-case"),
    pytest.param("\u0441ontacts.read", "malformed_scope", id="cyrillic-es"),
    pytest.param("contacts.re\u0430d", "malformed_scope", id="cyrillic-a"),
    pytest.param("\uff43\uff4f\uff4e\uff54\uff41\uff43\uff54\uff53.read", "malformed_scope", id="fullwidth"),
    pytest.param("contacts\u2024read", "malformed_scope", id="one-dot-leader"),
    pytest.param("contacts.read\u00a0", "malformed_scope", id="no-break-space"),
    pytest.param("contacts.read\u200b", "malformed_scope", id="zero-width-space"),
    pytest.param("contacts.read\x00", "malformed_scope", id="nul"),
    pytest.param('contacts"read', "malformed_scope", id="double-quote"),
    pytest.param("contacts\\read", "malformed_scope", id="backslash"),
    pytest.param("c" * 129, "malformed_scope", id="over-long"),
    pytest.param(" ".join(["contacts.read"] * 33), "malformed_scope", id="too-many"),
    pytest.param("", "malformed_scope", id="empty"),
    pytest.param("contacts.write", "scope_not_allowed", id="beyond-policy"),
    pytest.param("contacts.read contacts.write", "scope_not_allowed", id="one-beyond-policy"),
]  # fmt: skip


@pytest.mark.parametrize(("scope", "reason"), SCOPES)
def test_a_hostile_scope_is_invalid_scope(app: App, scope: str, reason: str) -> None:
    _refused(app, 400, "invalid_scope", reason, data=_form(app, scope=scope))


def test_no_scope_at_all_is_invalid_scope(app: App) -> None:
    _refused(app, 400, "invalid_scope", "malformed_scope", data=_form(app, scope=None))


def _raw(app: App, extra: str) -> dict[str, Any]:
    base = "&".join(f"{k}={v}" for k, v in _form(app).items())
    return {"content": (base + extra).encode(), "headers": {"content-type": FORM}}


PARAMETERS: list[Any] = [
    # (form changes, status, error, audit reason)
    pytest.param({"grant_type": "authorization_code"}, 400, "unsupported_grant_type", "unsupported_grant_type", id="grant-authorization-code"),
    pytest.param({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}, 400, "unsupported_grant_type", "unsupported_grant_type", id="grant-jwt-bearer"),
    pytest.param({"grant_type": TOKEN_EXCHANGE.upper()}, 400, "unsupported_grant_type", "unsupported_grant_type", id="grant-upper-case"),
    pytest.param({"grant_type": TOKEN_EXCHANGE + " "}, 400, "unsupported_grant_type", "unsupported_grant_type", id="grant-trailing-space"),
    pytest.param({"grant_type": None}, 400, "unsupported_grant_type", "unsupported_grant_type", id="grant-missing"),
    pytest.param({"subject_token_type": "urn:ietf:params:oauth:token-type:access_token"}, 400, "invalid_request", "unsupported_subject_token_type", id="subject-type-access-token"),
    pytest.param({"subject_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, 400, "invalid_request", "unsupported_subject_token_type", id="subject-type-refresh-token"),
    pytest.param({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, 400, "invalid_request", "unsupported_subject_token_type", id="subject-type-saml2"),
    pytest.param({"subject_token_type": None}, 400, "invalid_request", "unsupported_subject_token_type", id="subject-type-missing"),
    pytest.param({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, 400, "invalid_request", "unsupported_requested_token_type", id="requested-refresh-token"),
    pytest.param({"requested_token_type": ID_TOKEN_TYPE}, 400, "invalid_request", "unsupported_requested_token_type", id="requested-id-token"),
    pytest.param({"actor_token": "x.y.z", "actor_token_type": ID_TOKEN_TYPE}, 400, "invalid_request", "actor_token", id="delegation"),
    pytest.param({"subject_token": ""}, 400, "invalid_request", "missing_subject_token", id="subject-token-empty"),
    pytest.param({"resource": "contacts", "audience": "vault"}, 400, "invalid_target", "conflicting_target", id="resource-and-audience-differ"),
    pytest.param({"resource": "vault", "audience": "contacts"}, 400, "invalid_target", "conflicting_target", id="audience-and-resource-differ"),
    pytest.param({"resource": "crm"}, 400, "invalid_target", "unknown_connector", id="connector-unknown"),
    pytest.param({"resource": "CONTACTS"}, 400, "invalid_target", "unknown_connector", id="connector-upper-case"),
    pytest.param({"resource": "https://127.0.0.1/contacts"}, 400, "invalid_target", "unknown_connector", id="connector-as-url"),
    pytest.param({"resource": "\u0441ontacts"}, 400, "invalid_target", "unknown_connector", id="connector-cyrillic"),
    pytest.param({"ttl": "1e3"}, 400, "invalid_request", "malformed_ttl", id="ttl-exponent"),
    pytest.param({"ttl": "0x10"}, 400, "invalid_request", "malformed_ttl", id="ttl-hex"),
    pytest.param({"ttl": "+60"}, 400, "invalid_request", "malformed_ttl", id="ttl-plus"),
    pytest.param({"ttl": "60.0"}, 400, "invalid_request", "malformed_ttl", id="ttl-decimal"),
    pytest.param({"ttl": " 60"}, 400, "invalid_request", "malformed_ttl", id="ttl-leading-space"),
    pytest.param({"ttl": "1_000"}, 400, "invalid_request", "malformed_ttl", id="ttl-underscore"),
    pytest.param({"ttl": "\u0666\u0660"}, 400, "invalid_request", "malformed_ttl", id="ttl-arabic-indic"),
    pytest.param({"ttl": "\uff16\uff10"}, 400, "invalid_request", "malformed_ttl", id="ttl-fullwidth"),
    pytest.param({"ttl": "9" * 40}, 400, "invalid_request", "malformed_ttl", id="ttl-huge"),
    pytest.param({"ttl": "\u00b2"}, 400, "invalid_request", "malformed_ttl", id="ttl-superscript-two"),
    pytest.param({"ttl": "6\u00b2"}, 400, "invalid_request", "malformed_ttl", id="ttl-digit-and-superscript"),
    pytest.param({"ttl": "5" * 5000}, 400, "invalid_request", "malformed_ttl", id="ttl-5000-digits"),
    pytest.param({"ttl": "10m"}, 400, "invalid_request", "malformed_ttl", id="ttl-duration"),
    pytest.param({"ttl": ""}, 400, "invalid_request", "malformed_ttl", id="ttl-empty"),
    pytest.param({"ttl": "0"}, 400, "invalid_request", "invalid_request", id="ttl-zero"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "status", "error", "reason"), PARAMETERS)
def test_a_hostile_parameter_is_refused_exactly(
    app: App, changes: dict[str, str | None], status: int, error: str, reason: str
) -> None:
    _refused(app, status, error, reason, data=_form(app, **changes))


RAW_BODIES = [
    pytest.param("&resource=vault", id="repeated-resource"),
    pytest.param("&subject_token=x.y.z", id="repeated-subject-token"),
    pytest.param("&ttl=60&ttl=900", id="repeated-ttl"),
    pytest.param("&grant_type=client_credentials", id="repeated-grant-type"),
    pytest.param("".join(f"&x{n}=1" for n in range(12)), id="too-many-fields"),
    pytest.param("&scope=%FF", id="invalid-utf8"),
    pytest.param("&&", id="empty-pair"),
]


@pytest.mark.parametrize("extra", RAW_BODIES)
def test_a_repeated_or_malformed_field_is_invalid_request(app: App, extra: str) -> None:
    _refused(app, 400, "invalid_request", "invalid_request", **_raw(app, extra))


def test_a_body_over_the_cap_is_413(app: App) -> None:
    _refused(app, 413, "invalid_request", "invalid_request", **_raw(app, "&pad=" + "x" * 70_000))


def test_a_multipart_body_is_invalid_request(app: App) -> None:
    _refused(
        app, 400, "invalid_request", "invalid_request", files={"scope": ("a", b"contacts.read")}
    )


def test_a_huge_ttl_is_capped_by_the_policy_not_refused(app: App) -> None:
    response = app.client.post("/token", data=_form(app, ttl="999999"))
    assert response.status_code == 200
    assert response.json()["expires_in"] == 600  # the policy's max_ttl: 10m


# -- injection: shell and workflow-command payloads in every text field -----------

PAYLOADS = [
    # (payload, the audit reason when it is the scope: a space splits it into names)
    pytest.param("$(touch {marker})", "unknown_scope", id="dollar-paren"),
    pytest.param("`touch {marker}`", "unknown_scope", id="backticks"),
    pytest.param('"; touch {marker}; "', "malformed_scope", id="quote-semicolon"),
    pytest.param("x;touch${{IFS}}{marker}", "unknown_scope", id="ifs"),
    pytest.param("::error::pwned::{marker}", "unknown_scope", id="workflow-command"),
    pytest.param("a\n::add-mask::{marker}\r\n##[error]x", "malformed_scope", id="newline-command"),
]
FIELDS = [
    # (where the payload goes, status, error, audit reason)
    pytest.param("resource", 400, "invalid_target", "unknown_connector", id="connector"),
    pytest.param("audience", 400, "invalid_target", "conflicting_target", id="audience"),
    pytest.param("scope", 400, "invalid_scope", None, id="scope"),
    pytest.param("grant_type", 400, "unsupported_grant_type", "unsupported_grant_type", id="grant"),
    pytest.param("ttl", 400, "invalid_request", "malformed_ttl", id="ttl"),
    pytest.param("subject_token", 400, "invalid_grant", "malformed", id="subject-token"),
    pytest.param("user-agent", 400, "invalid_scope", "unknown_scope", id="user-agent"),
]


@pytest.mark.parametrize(("payload", "scope_reason"), PAYLOADS)
@pytest.mark.parametrize(("field", "status", "error", "reason"), FIELDS)
def test_a_shell_or_command_payload_runs_nothing_and_is_echoed_neutralized(
    app: App,
    tmp_path: Path,
    payload: str,
    scope_reason: str,
    field: str,
    status: int,
    error: str,
    reason: str | None,
) -> None:
    marker = tmp_path / "pwned"
    text = payload.format(marker=marker)
    headers = {"user-agent": text.replace("\n", " ").replace("\r", " ")}
    if field == "user-agent":
        post: dict[str, Any] = {"data": _form(app, scope="contacts.admin"), "headers": headers}
    else:
        post = {"data": _form(app, **{field: text})}
    body = _refused(app, status, error, reason or scope_reason, **post)
    assert not marker.exists()
    assert "::" not in body["error_description"]
