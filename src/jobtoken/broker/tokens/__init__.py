"""The broker's own tokens: ``exchange`` (the RFC 8693 use case, ID token to token),
``signing`` (signing and checking broker tokens, their keys), ``registry`` (revocation and
introspection), ``expiry_purge`` (the background task that bounds the store).
"""
