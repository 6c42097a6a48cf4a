"""The broker over HTTP (Starlette): each route reads and bounds its request, calls one use
case and builds its answer, including every OAuth error response, here at the edge only.

``app`` (the routing table, ``/token``, metadata, probes), ``registry_routes``
(``/revoke``, ``/introspect``), ``webhook``, ``proxy`` (``/proxy/<connector>/…``) with
``proxy_credentials`` (what it injects) and ``grant_waits`` (waiting for a connector's
refresh on the event loop), ``oauth`` (forms, client authentication,
RFC 6749 §5.2 errors), ``request_log``, ``store_outage``, ``blocking`` (the thread pool),
``openapi/`` (the API as a document).
"""
