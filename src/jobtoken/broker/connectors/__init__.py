"""Connectors, the upstream APIs the broker hands out access to: ``model`` (the
connector, its routes and settings), ``credentials`` (its long-lived credential, wherever
it is kept) and ``templates`` (documented facts of well-known APIs, read from the data
file ``templates.toml``, whose shape ``templates.schema.json`` describes).
"""
