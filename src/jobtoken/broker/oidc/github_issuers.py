"""The issuer URLs of GitHub's OIDC providers, and the rules for building them.

github.com (:data:`GITHUB_ISSUER`), a GitHub Enterprise Cloud enterprise with a
customized issuer (:func:`github_enterprise_issuer`, from its slug) and a GitHub
Enterprise Server instance (:func:`ghes_issuer`, from its hostname). Each is a
``TrustedIssuer`` URL for ``jobtoken.broker.oidc.verifier.VerifierConfig``.
"""

from __future__ import annotations

import re

__all__ = ["GITHUB_ISSUER", "ghes_issuer", "github_enterprise_issuer"]

#: The issuer of ID tokens on github.com.
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

_ENTERPRISE_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def github_enterprise_issuer(slug: str) -> str:
    """Issuer of a GitHub Enterprise Cloud enterprise with a customized issuer."""
    if not _ENTERPRISE_SLUG.fullmatch(slug):
        raise ValueError("an enterprise slug is lowercase letters, digits and dashes")
    return f"{GITHUB_ISSUER}/{slug}"


def ghes_issuer(host: str) -> str:
    """Issuer of a GitHub Enterprise Server instance at ``host``."""
    if not _HOSTNAME.fullmatch(host):
        raise ValueError("a GitHub Enterprise Server host is a DNS name such as github.example.com")
    return f"https://{host}/_services/token"
