"""The action's overall time budget (the `timeout` input), shared by every call."""

from __future__ import annotations

import time

__all__ = ["Deadline"]


class Deadline:
    """A point in monotonic time after which nothing more is attempted."""

    def __init__(self, seconds: float, *, _at: float | None = None) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds if _at is None else _at

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def within(self, seconds: float) -> Deadline:
        """The earlier of this deadline and `seconds` from now."""
        return Deadline(self.seconds, _at=min(self.at, time.monotonic() + seconds))
