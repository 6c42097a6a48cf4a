"""Structured JSON logs, one object per line on stderr, never a secret.

Log calls pass facts as ``extra={"fields": {...}}``; the formatter writes only those
fields, the logger name, level, time and message. Request logs carry the method, the
path without its query string, the status and the duration — never headers or bodies,
where tokens travel. Exceptions are logged by type and location only: an exception's
text may quote data it was given.

Public API: :func:`configure_logging`, :func:`log_event`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from typing import Any

__all__ = ["configure_logging", "log_event"]

LOGGER = logging.getLogger("jobtoken.broker")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            body.update(fields)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            frames = traceback.extract_tb(exc.__traceback__)
            body["error_type"] = type(exc).__name__
            if frames:
                body["error_at"] = f"{frames[-1].filename}:{frames[-1].lineno}"
        return json.dumps(body, default=str, ensure_ascii=True)


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # uvicorn's access log prints query strings; the broker writes its own request log.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs each proxied call's URL (query included) at INFO, httpcore its steps at
    # DEBUG: warnings and errors only, whatever the broker's level.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def log_event(message: str, level: int = logging.INFO, **fields: Any) -> None:
    LOGGER.log(level, message, extra={"fields": fields})
