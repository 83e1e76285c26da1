"""Warnings reported once per cause, so a stream of bad frames does not flood the log."""

from __future__ import annotations

import threading
from typing import Callable


class OncePerCause:
    """Calls ``emit(message)`` the first time each cause is seen and counts the repeats."""

    def __init__(self, emit: Callable[[str], None]):
        self._emit = emit
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def report(self, cause: str, message: str) -> bool:
        """Emit ``message`` if ``cause`` is new; returns whether it was emitted."""
        with self._lock:
            seen = self._counts.get(cause, 0)
            self._counts[cause] = seen + 1
        if seen == 0:
            self._emit(f'[{cause}] {message} (reported once; further occurrences are counted)')
        return seen == 0

    def count(self, cause: str) -> int:
        with self._lock:
            return self._counts.get(cause, 0)

    def forget(self, cause: str) -> None:
        """Report ``cause`` again next time (e.g. after the input recovered)."""
        with self._lock:
            self._counts.pop(cause, None)
