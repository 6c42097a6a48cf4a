"""The broker's HTTP API as an OpenAPI 3.1 document, written by hand as data:
``document`` (the whole, and ``python -m jobtoken.broker.http.openapi.document FILE``),
``operations`` (path by path), ``components`` (bodies, headers, shared answers).
"""
