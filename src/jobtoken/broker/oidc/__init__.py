"""Verifying an OIDC ID token of a CI job: ``verifier`` (the explicit sequence of checks),
``claims`` (the claim tables), ``jwks`` (issuers' keys, fetched and cached),
``github_issuers`` (GitHub's issuer URLs), ``errors`` (the refusal and its reasons).
"""
