"""Properties of how the action reads what a broker answers.

1. ``Response.json_object`` (every provider's JSON reader, ``loads_strict``) turns any
   bytes into a JSON object or an ``HttpError`` that quotes nothing of the body, and
   accepts exactly the strict JSON objects (no repeated key, no NaN, UTF-8);
2. the broker's RFC 8693 response (``parse_token_response``) and the fail-closed checks
   (``check_issued_token``) never raise on any JSON object, and accept a response
   exactly when :func:`documented_checks` does (docs/action.md and the checks' module
   docstring, written out again here from the response body itself);
3. an error answer (``_refusal``) of any status and body is one ``ProviderError`` whose
   message cannot start or break a workflow command;
4. ``revoke-handle`` decoding refuses anything but a handle with ``InputError``, and every
   handle the exchange writes decodes to its state.

``make test`` runs the bounded hypothesis profile; ``make fuzz`` the long one
(tests/conftest.py).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from hypothesis import event, example, given
from hypothesis import strategies as st

from jobtoken.action.checks import Expectations, check_issued_token
from jobtoken.action.errors import HttpError, InputError, ProviderError
from jobtoken.action.exchange import encode_revoke_handle
from jobtoken.action.http.client import Response
from jobtoken.action.providers.broker import (
    ACCESS_TOKEN_TYPE,
    PROVIDER,
    _refusal,
    parse_token_response,
)
from jobtoken.action.revoke import decode_revoke_handle
from jobtoken.wire.oauth_terms import JWT_TOKEN_TYPE

URL = "https://broker.test/token"
#: the broker-url input the messages quote back
BROKER_URL = "https://broker.test"
#: a line break or control character, or the start of a workflow command
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]|::")


def strict(raw: bytes) -> object:
    """The JSON value of `raw` when it is strict JSON, else a marker (written for the test)."""

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        if len({key for key, _ in items}) != len(items):
            raise ValueError("repeated key")
        return dict(items)

    def constant(name: str) -> object:
        raise ValueError(name)

    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError):
        return NotJson


class NotJson:
    pass


@functools.cache  # one strategy, however often a composite asks: hypothesis sets up each anew
def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    )


bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
    json_values().map(lambda value: json.dumps(value).encode()),
    st.sampled_from(
        [
            b'{"a": 1, "a": 2}',
            b'{"a": NaN}',
            b'{"a": Infinity}',
            b"[" * 100_000,
            b'{"a": "\xff"}',
            b"\xef\xbb\xbf{}",
            b'{"a": 1e999}',
            b"1" * 5000,
        ]
    ),
)


@given(body=bodies)
def test_json_object_is_an_object_or_an_http_error(body: bytes) -> None:
    response = Response(200, {}, body, URL)
    expected = strict(body)
    value: dict[str, object] | HttpError
    try:
        value = response.json_object("the broker")
    except HttpError as exc:
        value = exc
    if isinstance(value, HttpError):
        assert not isinstance(expected, dict)
        assert "broker.test" in value.message
        if len(body) >= 8:
            assert body.decode("utf-8", "replace") not in value.message
        return
    assert value == expected


# -- 2: the RFC 8693 response and the checks -------------------------------------------------

TOKEN_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
access_tokens = st.one_of(
    st.text(TOKEN_CHARS, min_size=8, max_size=40),
    st.text(max_size=40),
    st.sampled_from(["", "short", "x" * 16_384, "x" * 16_385, "tok en-abc", "tok\nen-abc"]),
    json_values(),
)
scope_texts = st.one_of(
    st.lists(st.sampled_from(["crm.read", "crm.write", "admin", "crm.READ"]), max_size=3).map(
        " ".join
    ),
    st.sampled_from(["crm.read\tcrm.write", "crm.read\ncrm.write", "crm.read\u00a0crm.write"]),
    json_values(),
)


@st.composite
def responses(draw: st.DrawFn) -> dict[str, Any]:
    """A broker answer: the fields RFC 8693 names, each right, wrong, missing or odd."""
    body: dict[str, Any] = {}
    fields = {
        "access_token": access_tokens,
        "token_type": st.sampled_from(["Bearer", "bearer", "BEARER", "N_A", "mac", ""])
        | json_values(),
        "issued_token_type": st.sampled_from([ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, "id_token"])
        | json_values(),
        "expires_in": st.sampled_from([600, 900, 910, 911, 30, 29, 1, 0, -5, True, 600.0, "600"])
        | st.integers(),
        "scope": scope_texts,
        "token_id": st.text(max_size=20) | st.sampled_from(["tok-1", "a" * 129]),
        "echo": st.just(True),  # token_id := access_token, below
    }
    good = {
        "access_token": st.text(TOKEN_CHARS, min_size=8, max_size=40),
        "token_type": st.just("Bearer"),
        "issued_token_type": st.just(ACCESS_TOKEN_TYPE),
        "expires_in": st.sampled_from([600, 60, 900]),
        "scope": st.sampled_from(["crm.read", "crm.read crm.write", ""]),
        "token_id": st.just("tok-1"),
        "echo": st.booleans(),
    }
    for name, strategy in fields.items():
        kind = draw(st.integers(0, 5))
        if kind <= 2:  # mostly right, often anything, sometimes missing
            body[name] = draw(good[name])
        elif kind != 4:
            body[name] = draw(strategy)
    if body.pop("echo", False) and "access_token" in body:
        body["token_id"] = body["access_token"]
    body.update(draw(st.dictionaries(st.text(max_size=6), json_values(), max_size=2)))
    return body


expectations = st.builds(
    lambda requested, extra, allowed, min_remaining, no_expiry: Expectations(
        requested_scopes=tuple(requested),
        allowed_scopes=frozenset([*requested, *extra]) if allowed else None,
        lifetime_cap=900,
        min_remaining=min_remaining,
        token_type=PROVIDER.token_type,
        issued_token_types=PROVIDER.issued_token_types,
        allow_no_expiry=no_expiry,
    ),
    st.lists(st.sampled_from(["crm.read", "crm.write"]), unique=True, min_size=1, max_size=2),
    st.lists(st.sampled_from(["admin"]), max_size=1),
    st.booleans(),
    st.sampled_from([0, 30, 60]),
    st.booleans(),
)


def documented_checks(body: dict[str, Any], expect: Expectations) -> bool:
    """Whether the documented checks pass, read straight from the response body."""
    token = body.get("access_token")
    if not isinstance(token, str) or not re.fullmatch(r"[\x21-\x7e]{8,16384}", token):
        return False
    token_type = body.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        return False
    if body.get("issued_token_type") not in (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE):
        return False
    if "expires_in" in body:
        life = body["expires_in"]
        if type(life) is not int or not 0 < life <= expect.lifetime_cap + 10:
            return False
        if life < expect.min_remaining:
            return False
    elif not expect.allow_no_expiry:
        return False
    scope = body.get("scope")
    if scope is None:
        granted = set(expect.requested_scopes)
    elif isinstance(scope, str):
        granted = {s for s in re.split(r"[ \t\r\n]+", scope) if s}
        if not granted <= set(expect.requested_scopes):
            return False
    else:
        return False
    return expect.allowed_scopes is None or granted <= expect.allowed_scopes


@given(body=responses(), expect=expectations)
@example(
    body={"access_token": "abcdefgh", "token_type": "Bearer", "expires_in": 600.0},
    expect=Expectations((), None, 900, 0, "Bearer", None, False),
)
def test_a_response_passes_the_checks_exactly_when_documented(
    body: dict[str, Any], expect: Expectations
) -> None:
    body = json.loads(json.dumps(body))  # what a JSON answer can hold
    issued = parse_token_response(body)
    failures = check_issued_token(issued, expect)
    assert (failures == []) == documented_checks(body, expect), failures
    event("accepted" if not failures else f"{len(failures)} failures")
    token = body.get("access_token")
    for reason in failures:  # no reason quotes the token
        assert not (isinstance(token, str) and len(token) >= 8 and token in reason)
    if not failures:
        assert issued.access_token == token
        assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", issued.token_id)
        assert token not in issued.token_id, "the token id, printed, holds the token"
        if body.get("token_id") == token:
            assert issued.token_id.startswith("sha256:")


# -- 3: error answers ----------------------------------------------------------------------------

error_bodies = st.one_of(
    bodies,
    st.fixed_dictionaries(
        {},
        optional={
            "error": st.sampled_from(["invalid_grant", "invalid_target", "bad\ncode", "::x"])
            | json_values(),
            "error_description": st.text(max_size=400) | json_values(),
        },
    ).map(lambda value: json.dumps(value).encode()),
)


@given(status=st.integers(100, 599), body=error_bodies)
@example(status=400, body=b'{"error": "invalid_grant", "error_description": "a\\n::add-mask::x"}')
@example(status=403, body=b'{"error": "::error::x"}')
def test_an_error_answer_is_one_safe_provider_error(status: int, body: bytes) -> None:
    response = Response(status, {}, body, URL)
    error = _refusal("the broker refused the exchange", response, BROKER_URL, "/token")
    assert isinstance(error, ProviderError)
    assert not UNSAFE.search(error.message), error.message
    assert len(error.message) < 1000


# -- 4: revoke handles -------------------------------------------------------------------------


@given(handle=st.text(max_size=80) | st.text(max_size=60).map(lambda t: "jt1." + t))
@example(handle="jt1.")
@example(handle="jt1.e30")
@example(handle="jt1.W10")
def test_any_revoke_handle_decodes_or_is_an_input_error(handle: str) -> None:
    try:
        state = decode_revoke_handle(handle, "broker")
    except InputError:
        return
    assert isinstance(state, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in state.items())


@given(state=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4))
def test_every_revoke_handle_the_exchange_writes_decodes_to_its_state(
    state: dict[str, str],
) -> None:
    handle = encode_revoke_handle("broker", state)
    if not state:
        assert handle == ""
        return
    assert decode_revoke_handle(handle, "broker") == state
