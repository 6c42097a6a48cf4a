"""The stdlib SigV4 signer is byte-identical to botocore's SigV4Auth."""

from __future__ import annotations

import datetime
import string
from dataclasses import dataclass
from unittest import mock
from urllib.parse import quote

import botocore.auth
import botocore.credentials
import pytest
from botocore.awsrequest import AWSRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobtoken.action.providers.sigv4 import AwsCredentials, canonical_request, encode_query, sign

NOW = datetime.datetime(2026, 11, 21, 12, 34, 56, tzinfo=datetime.timezone.utc)

TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
header_names = st.text(TOKEN_CHARS, min_size=1, max_size=20).filter(
    lambda n: n.lower() not in {"authorization", "date", "x-amz-date", "x-amz-security-token"}
)
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from(" \t"),
    max_size=40,
)
path_segments = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="?#/")
    | st.sampled_from(["é", "日", " "]),
    max_size=12,
) | st.sampled_from([".", "..", ""])
query_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from(["é", "日"]),
    max_size=12,
)


def _botocore_sign(case: Case) -> tuple[str, AWSRequest]:
    request = AWSRequest(
        method=case.method, url=case.url, headers=dict(case.headers), data=case.body
    )
    creds = case.credentials
    auth = botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(
            creds.access_key_id, creds.secret_access_key, creds.session_token
        ),
        case.service,
        case.region,
    )
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=NOW):
        auth.add_auth(request)
    return auth.canonical_request(request), request


@dataclass
class Case:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    credentials: AwsCredentials
    region: str
    service: str


@st.composite
def requests(draw: st.DrawFn) -> Case:
    segments = draw(st.lists(path_segments, max_size=5))
    path = "/" + "/".join(quote_segment(s) for s in segments) + draw(st.sampled_from(["", "/"]))
    params = draw(st.lists(st.tuples(query_text, query_text), max_size=4))
    port = draw(st.sampled_from(["", ":443", ":8443", ":80"]))
    scheme = draw(st.sampled_from(["https", "http"]))
    host = draw(
        st.sampled_from(["secretsmanager.us-east-1.amazonaws.com", "127.0.0.1", "STS.Example.COM"])
    )
    query = encode_query(params)
    url = f"{scheme}://{host}{port}{path}" + (f"?{query}" if query else "")
    names = draw(st.lists(header_names, max_size=5, unique_by=str.lower))
    headers = {name: draw(header_values) for name in names}
    return Case(
        method=draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "get", "PATCH"])),
        url=url,
        headers=headers,
        body=draw(st.binary(max_size=200)),
        credentials=AwsCredentials(
            draw(st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=20)),
            draw(st.text(string.ascii_letters + string.digits + "/+", min_size=40, max_size=40)),
            draw(
                st.none()
                | st.text(string.ascii_letters + string.digits + "/+=", min_size=1, max_size=300)
            ),
        ),
        region=draw(st.sampled_from(["us-east-1", "eu-west-3", "us-gov-west-1", "cn-north-1"])),
        service=draw(st.sampled_from(["secretsmanager", "sts", "execute-api", "s3"])),
    )


def quote_segment(segment: str) -> str:
    return quote(segment, safe="!$&'()*+,;=:@~")


@settings(max_examples=400, deadline=None)
@given(requests())
def test_signature_and_canonical_request_match_botocore(case: Case) -> None:
    ours = sign(
        method=case.method,
        url=case.url,
        headers=case.headers,
        body=case.body,
        credentials=case.credentials,
        region=case.region,
        service=case.service,
        now=NOW,
    )
    boto_canonical, boto_request = _botocore_sign(case)
    assert (
        canonical_request(method=case.method, url=case.url, headers=ours, body=case.body).encode()
        == boto_canonical.encode()
    )
    assert ours["Authorization"] == boto_request.headers["Authorization"]
    assert ours["X-Amz-Date"] == boto_request.headers["X-Amz-Date"] == "20261121T123456Z"
    if case.credentials.session_token:
        assert ours["X-Amz-Security-Token"] == boto_request.headers["X-Amz-Security-Token"]
    else:
        assert "X-Amz-Security-Token" not in ours


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(query_text, query_text), min_size=1, max_size=5))
def test_query_in_url_signs_like_botocore_params(params: list[tuple[str, str]]) -> None:
    creds = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    url = "https://sts.amazonaws.com/?" + encode_query(params)
    ours = sign(
        method="GET",
        url=url,
        headers={},
        body=b"",
        credentials=creds,
        region="us-east-1",
        service="sts",
        now=NOW,
    )
    request = AWSRequest(method="GET", url="https://sts.amazonaws.com/", params=params)
    auth = botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(creds.access_key_id, creds.secret_access_key),
        "sts",
        "us-east-1",
    )
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=NOW):
        auth.add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]


def test_aws_documented_example_signature() -> None:
    """The worked example of the AWS SigV4 documentation (IAM ListUsers)."""
    ours = sign(
        method="GET",
        url="https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        body=b"",
        credentials=AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        region="us-east-1",
        service="iam",
        now=datetime.datetime(2015, 8, 30, 12, 36, tzinfo=datetime.timezone.utc),
    )
    assert ours["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )


@pytest.mark.parametrize("name", ["Authorization", "x-amz-date", "Date", "X-Amz-Security-Token"])
def test_refuses_headers_it_sets_itself(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        sign(
            method="GET",
            url="https://a.example/",
            headers={name: "x"},
            body=b"",
            credentials=AwsCredentials("AK", "SK"),
            region="r",
            service="s",
            now=NOW,
        )


def test_secret_parts_of_credentials_stay_out_of_repr() -> None:
    creds = AwsCredentials("AKIDEXAMPLE", "the-secret-key", "the-session-token")
    assert "the-secret-key" not in repr(creds)
    assert "the-session-token" not in repr(creds)
    assert "AKIDEXAMPLE" in repr(creds)
