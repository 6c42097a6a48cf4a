"""The reference broker: it verifies a CI job's OIDC ID token, applies the repository
admins' policy, signs a job-bound token and audits the decision; it keeps connector
credentials encrypted, refreshes OAuth grants once for everyone, proxies connector calls
and revokes a job's tokens when the job ends (``docs/architecture.md``).

The rooms, from the edge inwards; a room imports only rooms listed below it:

==============  ========================================================================
``http/``       the routes (token, revoke and introspect, webhooks, proxy, OpenAPI), the
                OAuth form and error answers, the request log, store outages
``setup/``      ``broker check``'s preflight and ``broker init``'s starter config
``assembly``    the composition root: one :class:`~jobtoken.broker.assembly.Broker` built
                explicitly from the config (every room below is wired here)
``tokens/``     the exchange use case, signing the broker's own tokens, the token
                registry (revocation, introspection) and the expiry purge
``oidc/``       ID-token verification as an explicit sequence, its claim tables, JWKS
``upstream/``   every call the broker makes out: the bounded HTTP helper, the OAuth client,
                grants and their refresh, the authorization flow, the GitHub App, per-job
                upstream tokens, the upstream side of an exchange, the proxy's clients
``config/``     the strict TOML config and its model
``connectors/`` the connector model, its credentials, the provider catalogue (data)
``audit/``      the hash-chained trail, its views for people, its archive
``secrets/``    envelope encryption under the master key, sealed files, the seal key
``store/``      SQLite and PostgreSQL behind one set of queries, versioned migrations
``ops/``        metrics, structured logs, rate limits, the strict TOML reader: the ground
                floor every room may use
==============  ========================================================================
"""
