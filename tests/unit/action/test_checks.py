"""Each fail-closed check, with its own error text."""

from __future__ import annotations

import pytest

from jobtoken.action.checks import CHECKS, SKEW, Expectations, check_issued_token
from jobtoken.action.provider import IssuedToken

ACCESS = "urn:ietf:params:oauth:token-type:access_token"
EXPECT: dict[str, object] = {
    "requested_scopes": ("crm.read", "crm.write"),
    "allowed_scopes": None,
    "lifetime_cap": 900,
    "min_remaining": 30,
    "token_type": "Bearer",
    "issued_token_types": frozenset({ACCESS}),
    "allow_no_expiry": False,
}
GOOD_FIELDS: dict[str, object] = {
    "access_token": "jbt_0123456789abcdef",
    "token_type": "Bearer",
    "expires_in": 900,
    "scopes": ("crm.read", "crm.write"),
    "token_id": "tok_1",
    "issued_token_type": ACCESS,
}
GOOD = IssuedToken(**GOOD_FIELDS)  # type: ignore[arg-type]


def failures(token: IssuedToken = GOOD, **expect: object) -> list[str]:
    return check_issued_token(token, Expectations(**{**EXPECT, **expect}))  # type: ignore[arg-type]


def issued(**fields: object) -> IssuedToken:
    """GOOD with `fields` changed."""
    return IssuedToken(**{**GOOD_FIELDS, **fields})  # type: ignore[arg-type]


def test_a_good_token_passes_every_check() -> None:
    assert failures() == []
    assert len(CHECKS) == 9


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (issued(access_token=""), "the provider returned no access token"),
        (issued(access_token="jbt_abc def12"), "contains whitespace, control or non-ASCII"),
        (issued(access_token="jbt_abc\ndef12"), "contains whitespace, control or non-ASCII"),
        # a regex `$` also matches before a final newline: the check must not
        (issued(access_token="jbt_abcdef12\n"), "contains whitespace, control or non-ASCII"),
        (issued(access_token="\njbt_abcdef12"), "contains whitespace, control or non-ASCII"),
        (issued(access_token="jbt_abc\x00def12"), "contains whitespace, control or non-ASCII"),
        (issued(access_token="jbt_abcé_def12"), "contains whitespace, control or non-ASCII"),
        (issued(access_token="short"), "the access token is 5 characters long; expected 8 to"),
        (issued(access_token="x" * 16385), "the access token is 16385 characters long"),
        (issued(token_type="mac"), "token_type is 'mac'; expected Bearer"),
        (issued(issued_token_type=None), "issued_token_type is '(missing)'; expected " + ACCESS),
        (issued(expires_in=None), "said nothing about when the token expires"),
        (issued(expires_in=0), "the token is already expired (expires_in 0)"),
        (issued(expires_in=-5), "the token is already expired (expires_in -5)"),
        (issued(expires_in=900 + SKEW + 1), f"the token lives {911} s, longer than the 900 s"),
        (issued(expires_in=29), "the token expires in 29 s, sooner than min-remaining (30 s)"),
        (issued(scopes=("crm.read", "admin")), "granted scopes that were not requested: 'admin'"),
    ],
)
def test_each_failure_has_its_own_reason(token: IssuedToken, reason: str) -> None:
    found = failures(token)
    assert len(found) == 1, found
    assert reason in found[0]


def test_the_token_never_appears_in_a_reason() -> None:
    token = issued(access_token="jbt_secret value\n", token_type="mac", expires_in=10**6)
    reasons = failures(token, allowed_scopes=frozenset())
    assert len(reasons) == 4
    assert all("secret" not in r for r in reasons)


def test_token_type_is_compared_case_insensitively() -> None:
    assert failures(issued(token_type="bearer")) == []
    assert failures(issued(token_type="mac"), token_type=None) == []


def test_a_lifetime_within_the_skew_is_accepted() -> None:
    assert failures(issued(expires_in=900 + SKEW)) == []


def test_no_expiry_passes_only_when_allowed() -> None:
    assert failures(issued(expires_in=None), allow_no_expiry=True) == []


def test_an_absent_scope_means_exactly_the_requested_set() -> None:
    assert failures(issued(scopes=None)) == []
    reasons = failures(issued(scopes=None), allowed_scopes=frozenset({"crm.read"}))
    assert reasons == ["the token has scopes outside allowed-scopes: 'crm.write'"]


def test_fewer_scopes_than_requested_are_accepted() -> None:
    assert failures(issued(scopes=("crm.read",))) == []


def test_granted_scopes_must_be_within_allowed_scopes() -> None:
    allowed = frozenset({"crm.read", "crm.write"})
    assert failures(allowed_scopes=allowed) == []
    reasons = failures(issued(scopes=("crm.read",)), allowed_scopes=frozenset({"other"}))
    assert reasons == ["the token has scopes outside allowed-scopes: 'crm.read'"]


def test_provider_text_in_a_reason_is_neutralized() -> None:
    (reason,) = failures(issued(token_type="x\n::add-mask::y"))
    assert "\n" not in reason
    assert "::" not in reason
