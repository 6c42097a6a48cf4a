from __future__ import annotations

import json
import logging

from jobtoken.broker.ops.logs import JsonFormatter


def _format(record: logging.LogRecord) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
    return parsed


def test_fields_are_written_as_json() -> None:
    record = logging.LogRecord("jobtoken.broker", logging.INFO, __file__, 1, "request", None, None)
    record.fields = {"path": "/token", "status": 200}
    body = _format(record)
    assert body["message"] == "request"
    assert body["path"] == "/token"
    assert body["status"] == 200
    assert body["level"] == "info"


def test_exceptions_are_logged_by_type_and_place_never_by_text() -> None:
    try:
        raise ValueError("token=eyJsecret")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "jobtoken.broker", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "eyJsecret" not in line
    body = json.loads(line)
    assert body["error_type"] == "ValueError"
    assert str(body["error_at"]).startswith(__file__ + ":")


def test_httpx_request_lines_are_silenced_whatever_the_level() -> None:
    """httpx logs every proxied URL, query included, at INFO."""
    from jobtoken.broker.ops.logs import configure_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("debug")
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
        assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)
        assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
