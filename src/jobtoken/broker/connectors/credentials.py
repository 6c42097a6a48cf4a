"""A connector's long-lived credential — its API key (``static``), OAuth client secret
(``oauth2-*``) or GitHub App private key (``github-app``) — wherever it is kept:

- in the store, sealed under the master key by ``jobtoken broker connector set``;
- or in the sealed credential file its config table names
  (``credential_sealed_file = "path"``, ``secrets/sealed_file.py``), sealed with
  ``jobtoken seal`` to the broker's seal key, for configs kept in a repository.

A sealed file is read on each use (it is small) and opened when its content is new to
this process: at its first use, and again after a deploy replaced it. Each opening is
audited (decision ``credential_opened``, with the file's path and SHA-256, never the
credential) before the credential is used; an opening that cannot be audited is not
used. A file that does not open is logged once, with the reason and what to do.

Every use of a connector's credential goes through :meth:`ConnectorCredentials.get`:
the proxy, passthrough leases, OAuth grants and per-job upstream tokens.

Public API: :class:`ConnectorCredentials`, :class:`CredentialUnusable`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from jobtoken.broker.audit.chain import AuditEntry, AuditLog
from jobtoken.broker.connectors.model import Connector
from jobtoken.broker.errors import BrokerError
from jobtoken.broker.ops.logs import log_event
from jobtoken.broker.secrets.envelope import Envelope, EnvelopeError
from jobtoken.broker.secrets.seal_keys import SealKeys
from jobtoken.broker.secrets.sealed_file import SealedFile, SealedFileError, read_sealed_file
from jobtoken.broker.store import SqlStore, sealed_record_id

__all__ = ["ConnectorCredentials", "CredentialUnusable"]


class CredentialUnusable(BrokerError):
    """No usable credential: ``reason`` is ``credential_missing`` (none was set) or
    ``credential_unreadable`` (it does not open). A job is told only that the operators
    must act (``invalid_target``); ``text`` is for the operators (it names the connector,
    and the file, never a secret)."""

    def __init__(self, reason: str, connector: str, text: str) -> None:
        state = "has no credential yet" if reason == "credential_missing" else "is unavailable"
        description = f"connector {connector} {state}; ask the broker operators"
        super().__init__("invalid_target", description, reason=reason)
        self.text = text


class ConnectorCredentials:
    def __init__(self, store: SqlStore, envelope: Envelope, audit: AuditLog) -> None:
        self._store, self._envelope, self._audit = store, envelope, audit
        self.seal_keys = SealKeys(store, envelope)
        #: connector -> (SHA-256 of its sealed file, the credential opened from it)
        self._opened: dict[str, tuple[str, bytes]] = {}
        self._logged: dict[str, str] = {}
        self._guard = threading.Lock()
        #: held while a new file content is opened and audited: once, not once per thread
        self._opening = threading.Lock()

    def get(self, connector: Connector) -> bytes:
        """The connector's credential; :class:`CredentialUnusable` if there is none."""
        if connector.credential_sealed_file is not None:
            return self._from_sealed_file(connector)
        sealed = self._store.get_credential(connector.name)
        if sealed is None:
            raise CredentialUnusable(
                "credential_missing",
                connector.name,
                f"connector {connector.name} has no credential; an operator runs `jobtoken "
                f"broker connector set {connector.name} --config FILE --credential-file F` "
                "or names a credential_sealed_file",
            )
        try:
            return self._envelope.decrypt(
                sealed_record_id("connector_credentials", connector.name), sealed
            )
        except EnvelopeError as exc:
            raise CredentialUnusable(
                "credential_unreadable",
                connector.name,
                f"connector {connector.name}'s credential: {exc}",
            ) from None

    def require_usable(self, connector: Connector) -> None:
        """Open the connector's credential without keeping or auditing it (``broker
        check``); :class:`CredentialUnusable` as :meth:`get`."""
        path = connector.credential_sealed_file
        if path is None:
            self.get(connector)
            return
        try:
            self.seal_keys.open(read_sealed_file(path))
        except SealedFileError as exc:
            raise CredentialUnusable(
                "credential_unreadable", connector.name, f"connector {connector.name}: {exc}"
            ) from None

    def _from_sealed_file(self, connector: Connector) -> bytes:
        path = connector.credential_sealed_file
        assert path is not None
        try:
            sealed = read_sealed_file(path)
            cached = self._cached(connector.name, sealed.sha256)
            if cached is not None:
                return cached
            with self._opening:
                cached = self._cached(connector.name, sealed.sha256)
                if cached is not None:
                    return cached
                return self._open_and_audit(connector, path, sealed)
        except SealedFileError as exc:
            text = f"connector {connector.name}: {exc}"
            self._log_once(connector.name, text)
            raise CredentialUnusable("credential_unreadable", connector.name, text) from None

    def _cached(self, name: str, sha256: str) -> bytes | None:
        with self._guard:
            cached = self._opened.get(name)
        return cached[1] if cached is not None and cached[0] == sha256 else None

    def _open_and_audit(self, connector: Connector, path: Path, sealed: SealedFile) -> bytes:
        credential = self.seal_keys.open(sealed)
        self._audit.record(
            AuditEntry(
                decision="credential_opened",
                reason="sealed_file",
                connector=connector.name,
                file=str(path),
                file_sha256=sealed.sha256,
            )
        )
        with self._guard:
            self._opened[connector.name] = (sealed.sha256, credential)
            self._logged.pop(connector.name, None)
        log_event(
            "sealed credential file opened",
            connector=connector.name,
            file=str(path),
            file_sha256=sealed.sha256,
        )
        return credential

    def _log_once(self, name: str, text: str) -> None:
        with self._guard:
            if self._logged.get(name) == text:
                return
            self._logged[name] = text
        log_event("sealed credential file refused", logging.ERROR, connector=name, error=text)
