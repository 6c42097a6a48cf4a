"""The broker's HTTP API as an OpenAPI 3.1 document, written by hand as data.

``GET /openapi.json`` serves :data:`OPENAPI_JSON`; ``docs/openapi.json`` is the same
text, written by ``python -m jobtoken.broker.http.openapi.document docs/openapi.json``.
``tests/unit/broker/http/openapi/test_document.py`` checks that the copy is current,
that the paths and methods here are exactly the app's routing table (``http/app.py``) and
that the document validates against the OpenAPI 3.1 schema. The document describes no one
deployment: its URLs are relative, and the connectors and scopes are the config's.

Public API: :data:`DOCUMENT`, :data:`OPENAPI_JSON`, :func:`serve_openapi`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from jobtoken import __version__
from jobtoken.broker.http.openapi.components import COMPONENTS
from jobtoken.broker.http.openapi.operations import PATHS, PROXY_RESPONSES

__all__ = ["DOCUMENT", "OPENAPI_JSON", "serve_openapi"]

Json = dict[str, Any]

DOCUMENT: Json = {
    "openapi": "3.1.0",
    "info": {
        "title": "jobtoken broker",
        "version": __version__,
        "summary": "Short-lived, job-scoped connector tokens for GitHub Actions jobs.",
        "description": "Every answer carries `X-Request-Id`, the id in the broker's log "
        "line and in the audit record of the decision. Errors are RFC 6749 §5.2 bodies "
        "with `Cache-Control: no-store`, except on /proxy (RFC 6750 codes), "
        "/webhooks/github and /metrics. See docs/broker.md.",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    },
    "tags": [
        {"name": "oauth", "description": "Token exchange, revocation, introspection, keys."},
        {"name": "proxy", "description": "Connector calls without the upstream credential."},
        {"name": "github", "description": "GitHub's webhook deliveries."},
        {"name": "operations", "description": "Probes, metrics and this document."},
    ],
    "paths": PATHS,
    "components": {
        **COMPONENTS,
        "responses": {**COMPONENTS["responses"], **PROXY_RESPONSES},
    },
}

#: what GET /openapi.json serves and docs/openapi.json holds, byte for byte
OPENAPI_JSON = (json.dumps(DOCUMENT, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


async def serve_openapi(request: Request, broker: object) -> Response:
    return Response(
        OPENAPI_JSON,
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )


def main(argv: list[str]) -> int:
    """``python -m jobtoken.broker.http.openapi.document [FILE]``: write it (default stdout)."""
    if len(argv) > 1:
        print("usage: python -m jobtoken.broker.http.openapi.document [FILE]", file=sys.stderr)
        return 2
    if argv:
        Path(argv[0]).write_bytes(OPENAPI_JSON)
    else:
        sys.stdout.buffer.write(OPENAPI_JSON)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
