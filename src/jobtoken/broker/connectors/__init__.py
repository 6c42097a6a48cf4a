"""Connectors, the upstream APIs the broker hands out access to: ``model`` (the
connector, its routes and settings), ``credentials`` (its long-lived credential, wherever
it is kept), ``templates`` and ``template_catalog`` (documented facts of well-known APIs).
"""
