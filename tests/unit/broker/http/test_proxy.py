from __future__ import annotations

import pytest

from jobtoken.broker.http.proxy import _segments


@pytest.mark.parametrize(
    ("raw", "segments"),
    [
        ("/v1/contacts", ("v1", "contacts")),
        ("/v1/contacts/a%20b", ("v1", "contacts", "a%20b")),
        ("/", ()),
        ("", ()),
    ],
)
def test_plain_paths_keep_their_encoded_segments(raw: str, segments: tuple[str, ...]) -> None:
    assert _segments(raw) == segments


@pytest.mark.parametrize(
    "raw",
    ["/v1/../admin", "/v1/%2e%2e/admin", "/v1/./x", "/v1//x", "/v1/a%2Fb", "/v1/a%5cb", "/v1/%0a"],
)
def test_dot_empty_and_encoded_separator_segments_are_refused(raw: str) -> None:
    assert _segments(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        "/v1/..;/admin",
        "/v1/%2e%2e;/admin",
        "/v1/%2e%2e%3b/admin",
        "/v1/x;jsessionid=1",
        "/v1/a%3Bb",
    ],
)
def test_segments_with_path_parameters_are_refused(raw: str) -> None:
    """Issue 9 item 12: `..;` reaches another route on upstreams that drop `;` parameters."""
    assert _segments(raw) is None
