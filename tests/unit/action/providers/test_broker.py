"""The broker provider: RFC 8693 request snapshots, response parsing, RFC 6749 errors, RFC 7009."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator

import pytest

from jobtoken.action.deadline import Deadline
from jobtoken.action.errors import ProviderError
from jobtoken.action.inputs import InputReader, read_exchange_inputs
from jobtoken.action.provider import ExchangeRequest, RevokeRequest, load
from jobtoken.action.providers.broker import (
    ACCESS_TOKEN_TYPE,
    INVALID_SCOPE,
    PROVIDER,
    parse_token_response,
    token_id_of,
)
from support.fake_broker import FakeBroker


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    with FakeBroker() as fake:
        yield fake


class IdTokens:
    """Hands out a distinct fake ID token per call, as the runner does."""

    def __init__(self) -> None:
        self.given: list[tuple[str, str]] = []

    def __call__(self, audience: str) -> str:
        token = f"eyJ.id-token-{len(self.given)}.sig"
        self.given.append((audience, token))
        return token


def exchange_request(broker: FakeBroker, id_tokens: IdTokens, **inputs: str) -> ExchangeRequest:
    env = {
        "INPUT_BROKER_URL": broker.url + "/",
        "INPUT_CONNECTOR": "hubspot",
        "INPUT_SCOPES": "crm.read crm.write",
        "INPUT_TTL": "10m",
        **{f"INPUT_{k.upper()}": v for k, v in inputs.items()},
    }
    reader = InputReader(env)
    return ExchangeRequest(read_exchange_inputs(reader), reader, id_tokens, Deadline(10))


def test_the_registry_loads_the_broker_provider() -> None:
    assert load("broker") is PROVIDER


def test_the_exchange_request_is_an_rfc_8693_form(broker: FakeBroker) -> None:
    id_tokens = IdTokens()
    issued = PROVIDER.exchange(exchange_request(broker, id_tokens))

    (request,) = broker.requests
    assert (request.method, request.path) == ("POST", "/token")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.form == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": "eyJ.id-token-0.sig",
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "requested_token_type": ACCESS_TOKEN_TYPE,
        "resource": "hubspot",
        "scope": "crm.read crm.write",
        "ttl": "600",
    }
    assert list(request.form) == [
        "grant_type",
        "subject_token",
        "subject_token_type",
        "requested_token_type",
        "resource",
        "scope",
        "ttl",
    ]
    # the default audience is the broker URL
    assert id_tokens.given == [(broker.url, "eyJ.id-token-0.sig")]
    assert issued.access_token == broker.issued[0]
    assert issued.scopes == ("crm.read", "crm.write")
    assert issued.expires_in == 600
    assert issued.token_type == "Bearer"


def test_the_audience_input_is_used_and_no_scope_means_no_scope_field(broker: FakeBroker) -> None:
    id_tokens = IdTokens()
    PROVIDER.exchange(exchange_request(broker, id_tokens, audience="jobtoken", scopes=""))
    assert id_tokens.given[0][0] == "jobtoken"
    assert "scope" not in broker.requests[0].form


def test_a_retried_exchange_carries_a_fresh_id_token(
    broker: FakeBroker, retry_pauses: list[float]
) -> None:
    broker.fail_next(503, count=2)
    id_tokens = IdTokens()
    PROVIDER.exchange(exchange_request(broker, id_tokens))

    subjects = [r.form["subject_token"] for r in broker.requests]
    assert subjects == ["eyJ.id-token-0.sig", "eyJ.id-token-1.sig", "eyJ.id-token-2.sig"]


def test_an_rfc_6749_error_becomes_one_readable_denial(broker: FakeBroker) -> None:
    broker.reply = (
        403,
        {
            "error": "invalid_scope",
            "error_description": "crm.write\n::error::not allowed " + "x" * 500,
        },
    )
    with pytest.raises(ProviderError) as caught:
        PROVIDER.exchange(exchange_request(broker, IdTokens()))

    error = caught.value
    assert error.denied
    assert error.message.startswith(
        "the broker refused the exchange (HTTP 403): "
        "invalid_scope: crm.write : :error: :not allowed"
    )
    assert error.message.endswith(
        "Ask for fewer scopes; a connector's scopes are the broker operators' to add, "
        "a policy's the repository admins' to allow"
    )
    assert "\n" not in error.message
    assert len(error.message) < 500


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ((500, b"<html>oops</html>"), "answered HTTP 500 (after retries; try again later)"),
        ((400, {"error": "bad\ncode"}), "answered HTTP 400"),
        ((404, {"detail": "no"}), "answered HTTP 404"),
    ],
)
def test_other_failures_name_the_status(
    broker: FakeBroker, reply: tuple[int, object], message: str, retry_pauses: list[float]
) -> None:
    broker.reply = reply
    broker.fail_next(reply[0], count=0)
    with pytest.raises(ProviderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PROVIDER.exchange(exchange_request(broker, IdTokens(), timeout="3s"))


def test_only_a_literal_true_says_the_upstream_token_dies_with_the_job() -> None:
    said = parse_token_response({"access_token": "t", "upstream_revoked_at_job_end": True})
    assert said.upstream_revoked_at_job_end is True
    for value in (False, "true", 1, None):
        body = {"access_token": "t", "upstream_revoked_at_job_end": value}
        assert parse_token_response(body).upstream_revoked_at_job_end is False
    assert parse_token_response({"access_token": "t"}).upstream_revoked_at_job_end is False


def test_response_fields_of_the_wrong_type_fail_the_checks_later() -> None:
    issued = parse_token_response(
        {"access_token": 5, "token_type": None, "expires_in": "900", "scope": ["a"]}
    )
    assert issued.access_token == ""
    assert issued.token_type == ""
    assert issued.expires_in == 0
    assert issued.scopes == (INVALID_SCOPE,)
    assert parse_token_response({"access_token": "t", "expires_in": True}).expires_in == 0
    assert parse_token_response({"access_token": "t"}).expires_in is None
    assert parse_token_response({"access_token": "t"}).scopes is None


def test_token_id_prefers_the_brokers_then_the_jti_then_a_sha256_prefix() -> None:
    payload = base64.urlsafe_b64encode(json.dumps({"jti": "abc-123"}).encode()).decode()
    jwt_token = f"eyJhbGciOiJFZERTQSJ9.{payload.rstrip('=')}.sig"
    assert token_id_of("tok_1", "t") == "tok_1"
    assert token_id_of("bad id!", jwt_token) == "abc-123"
    expected = "sha256:" + hashlib.sha256(b"opaque-token").hexdigest()[:32]
    assert token_id_of(None, "opaque-token") == expected


def revoke_request(broker: FakeBroker, **fields: object) -> RevokeRequest:
    values: dict[str, object] = {
        "token": None,
        "token_id": None,
        "state": {},
        "broker_url": broker.url,
        "audience": None,
        "provider_inputs": InputReader({}),
        "id_token": IdTokens(),
        "deadline": Deadline(5),
        **fields,
    }
    return RevokeRequest(**values)  # type: ignore[arg-type]


def test_revoke_by_possession_is_rfc_7009(broker: FakeBroker) -> None:
    done = PROVIDER.revoke(revoke_request(broker, token="jbt_abc"))

    (request,) = broker.requests
    assert (request.method, request.path) == ("POST", "/revoke")
    assert request.form == {"token": "jbt_abc", "token_type_hint": "access_token"}
    assert done.startswith("revoked the token")


def test_revoke_by_id_proves_the_job_with_a_fresh_id_token(broker: FakeBroker) -> None:
    id_tokens = IdTokens()
    PROVIDER.revoke(revoke_request(broker, token_id="tok_1", id_token=id_tokens))

    assert broker.requests[0].form == {
        "token_id": "tok_1",
        "subject_token": "eyJ.id-token-0.sig",
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
    }
    assert id_tokens.given[0][0] == broker.url


def test_a_shared_credential_is_revoked_again_with_a_fresh_id_token_of_the_job(
    broker: FakeBroker,
) -> None:
    broker.shared_credentials.add("static-key-abc")
    id_tokens = IdTokens()
    done = PROVIDER.revoke(revoke_request(broker, token="static-key-abc", id_token=id_tokens))

    alone, proven = broker.requests
    assert alone.form == {"token": "static-key-abc", "token_type_hint": "access_token"}
    assert (proven.method, proven.path) == ("POST", "/revoke")
    assert proven.form == {
        "token": "static-key-abc",
        "token_type_hint": "access_token",
        "subject_token": "eyJ.id-token-0.sig",
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
    }
    assert id_tokens.given == [(broker.url, "eyJ.id-token-0.sig")]
    assert broker.revoked == ["static-key-abc"]
    assert done.startswith("revoked this job's lease of the connector's shared credential")


def test_a_refused_revocation_is_an_error_and_not_retried(broker: FakeBroker) -> None:
    broker.revoke_status = 400
    id_tokens = IdTokens()
    with pytest.raises(ProviderError, match="did not revoke the token"):
        PROVIDER.revoke(revoke_request(broker, token="jbt_abc", id_token=id_tokens))
    assert len(broker.requests) == 1
    assert id_tokens.given == []  # only a shared credential needs the job's ID token


def test_nothing_given_is_nothing_to_revoke(broker: FakeBroker) -> None:
    assert PROVIDER.revoke(revoke_request(broker)) == "nothing to revoke"
    assert broker.requests == []


def test_a_completed_job_is_named_in_the_invalid_grant_hint(broker: FakeBroker) -> None:
    broker.reply = (400, {"error": "invalid_grant", "error_description": "the job has completed"})
    with pytest.raises(ProviderError) as caught:
        PROVIDER.exchange(exchange_request(broker, IdTokens()))
    assert "its job has completed" in caught.value.message
    assert caught.value.message.endswith("request tokens only while the job runs")


def test_a_path_typo_404_names_broker_url_and_what_was_requested(broker: FakeBroker) -> None:
    broker.reply = (404, b"Not Found")
    request = exchange_request(broker, IdTokens(), timeout="3s", broker_url=broker.url + "/api")
    with pytest.raises(ProviderError) as caught:
        PROVIDER.exchange(request)
    assert caught.value.message == (
        f"the broker refused the exchange: POST {broker.url}/api/token answered HTTP 404 "
        f"(no such path there): check broker-url, now {broker.url}/api: it must be the "
        "broker's base URL, to which the action appends /token"
    )
    assert len(broker.requests) == 1  # a 404 is not retried


@pytest.mark.parametrize("status", [405, 501])
def test_a_server_that_is_not_a_broker_is_not_retried_and_says_check_broker_url(
    broker: FakeBroker, status: int
) -> None:
    broker.reply = (status, b"<html>Unsupported method</html>")
    with pytest.raises(ProviderError) as caught:
        PROVIDER.exchange(exchange_request(broker, IdTokens(), timeout="3s"))
    assert caught.value.message.endswith(
        f"answered HTTP {status}: this URL does not look like a jobtoken broker/RFC 8693 "
        f"endpoint: check broker-url, now {broker.url}"
    )
    assert "try again later" not in caught.value.message
    assert len(broker.requests) == 1


def test_a_web_page_answering_200_says_check_broker_url(broker: FakeBroker) -> None:
    broker.reply = (200, b"<!doctype html><title>Welcome</title>")
    with pytest.raises(ProviderError, match=r"not a JSON object: this URL does not look like"):
        PROVIDER.exchange(exchange_request(broker, IdTokens()))


def test_a_revoke_path_typo_names_broker_url_and_revoke(broker: FakeBroker) -> None:
    # the fake broker answers an unknown path 404 {"error": "not_found"}, as many servers do
    request = revoke_request(broker, token="jbt_" + "a" * 40, broker_url=broker.url + "/api")
    with pytest.raises(ProviderError) as caught:
        PROVIDER.revoke(request)
    assert caught.value.message == (
        f"the broker did not revoke the token: POST {broker.url}/api/revoke answered HTTP 404 "
        f"(no such path there): check broker-url, now {broker.url}/api: it must be the "
        "broker's base URL, to which the action appends /revoke"
    )


def test_a_503_is_still_retried_and_reported_as_try_again_later(
    broker: FakeBroker, retry_pauses: list[float]
) -> None:
    broker.reply = (503, b"busy")
    with pytest.raises(ProviderError, match=r"answered HTTP 503 \(after retries; try again later"):
        PROVIDER.exchange(exchange_request(broker, IdTokens(), timeout="3s"))
    assert len(broker.requests) > 1


def test_the_generic_invalid_target_hint_gives_way_to_the_brokers_reason(
    broker: FakeBroker,
) -> None:
    broker.reply = (
        400,
        {
            "error": "invalid_target",
            "error_description": "connector hubspot has no credential yet; "
            "ask the broker operators",
        },
    )
    with pytest.raises(ProviderError) as caught:
        PROVIDER.exchange(exchange_request(broker, IdTokens()))
    assert caught.value.message.endswith("ask the broker operators")
    assert "no such connector" not in caught.value.message
    broker.reply = (400, {"error": "invalid_target"})
    with pytest.raises(ProviderError, match="no such connector, or no policy"):
        PROVIDER.exchange(exchange_request(broker, IdTokens()))


def test_an_unauthorized_client_with_the_brokers_cause_gets_no_no_policy_matches_hint(
    broker: FakeBroker,
) -> None:
    cause = "this repository's policy file is invalid: o/r.yml:6: not valid YAML: a tab"
    broker.reply = (400, {"error": "unauthorized_client", "error_description": cause})
    with pytest.raises(ProviderError) as caught:
        PROVIDER.exchange(exchange_request(broker, IdTokens()))
    assert caught.value.message.endswith(cause)
    assert "No policy" not in caught.value.message

    broker.reply = (400, {"error": "unauthorized_client"})  # no cause: the hint guesses
    with pytest.raises(ProviderError) as caught:
        PROVIDER.exchange(exchange_request(broker, IdTokens()))
    assert caught.value.message.endswith("No policy of the repository admins matches this job")
