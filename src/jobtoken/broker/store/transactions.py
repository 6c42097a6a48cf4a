"""How every query of the store runs: in a read or a write transaction of its backend.

The query mixins (``audit_queries``, ``issuing``, ``job_ends``, ``sealed_queries``,
``grant_queries``) are written against :class:`Transactions`;
:class:`~jobtoken.broker.store.base.SqlStore` implements it once, over its backend's
hooks (``_read_transaction``, ``_write_transaction``): a read runs at once on a
connection of its own, a write through the group-commit writer (``writer.py``).

Public API: :class:`Transactions`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from jobtoken.broker.store.records import AuditBuilder, Cursor

__all__ = ["Transactions"]

T = TypeVar("T")


class Transactions:
    """The hooks a query runs on."""

    def _sql(self, text: str) -> str:
        """``text`` with the backend's placeholder for ``?``."""
        raise NotImplementedError

    def _read(self, body: Callable[[Cursor], T]) -> T:
        """``body``'s result, in a read transaction (``StoreError`` if the store is down)."""
        raise NotImplementedError

    def _write(self, body: Callable[[Cursor], T]) -> T:
        """``body``'s result once its write transaction committed durably; ``body``'s
        own exception, with nothing of it committed, if it raised."""
        raise NotImplementedError

    def _append(self, cur: Cursor, build: AuditBuilder) -> int:
        """Append one audit record inside the caller's write transaction; its seq."""
        raise NotImplementedError
