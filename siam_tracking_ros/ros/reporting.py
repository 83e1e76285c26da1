"""Counting what goes wrong, and warning about it without flooding the log.

Every bad frame, refused request or refused transition is counted (the counters are published
in ``status``); its warning is emitted at most once per ``throttle_s`` for each cause, saying how
many occurrences the silence hid. rclpy's own ``throttle_duration_sec`` throttles per call site,
which would let one cause mute another reported from the same line, hence a throttle per cause.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

# TrackerStatus counter fields, each the sum of the causes mapped to it below.
COUNTER_FIELDS = ('frames_received', 'frames_skipped', 'frames_missing', 'decode_errors',
                  'dropped_size_mismatch', 'dropped_too_large', 'dropped_tracker_error',
                  'catch_up_abandoned', 'requests_refused', 'transitions_refused',
                  'parameter_changes_refused')

# Warning causes (image_codec's ImageConversionError.cause keys among them) -> counter field.
DECODE_CAUSES = ('image_error', 'unknown_encoding', 'invalid_size', 'step_size_mismatch',
                 'truncated_data', 'corrupt_compressed')
COUNTER_OF_CAUSE = {
    **{cause: 'decode_errors' for cause in DECODE_CAUSES},
    'size_mismatch': 'dropped_size_mismatch',
    'too_large': 'dropped_too_large',
    'tracker_error': 'dropped_tracker_error',
    'catch_up_bound': 'catch_up_abandoned',
    'request_refused': 'requests_refused',
    'transition_refused': 'transitions_refused',
    'parameters_refused': 'parameter_changes_refused',
}


class Counters:
    """Named, thread-safe event counters."""

    def __init__(self, names=COUNTER_FIELDS):
        self._values = {name: 0 for name in names}
        self._lock = threading.Lock()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def set(self, name: str, value: int) -> None:
        with self._lock:
            self._values[name] = value

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class ThrottledReporter:
    """Counts each occurrence of a cause and emits its warning at most every ``throttle_s``."""

    def __init__(self, emit: Callable[[str], None], counters: Counters, throttle_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self._emit, self._counters = emit, counters
        self._throttle_s, self._clock = throttle_s, clock
        self._last_emitted: dict[str, float] = {}
        self._hidden: dict[str, int] = {}
        self._lock = threading.Lock()

    def report(self, cause: str, message: str, amount: int = 1) -> bool:
        """Count ``amount`` occurrences of ``cause``; emit ``message`` unless the cause was
        reported less than ``throttle_s`` ago. Returns whether it was emitted."""
        field = COUNTER_OF_CAUSE.get(cause)
        if field is not None:
            self._counters.add(field, amount)
        now = self._clock()
        with self._lock:
            last = self._last_emitted.get(cause)
            if last is not None and now - last < self._throttle_s:
                self._hidden[cause] = self._hidden.get(cause, 0) + amount
                return False
            self._last_emitted[cause] = now
            hidden = self._hidden.pop(cause, 0)
        note = (f' ({hidden} more since the last report)' if hidden else '')
        self._emit(f'[{cause}] {message}{note} (at most one report every {self._throttle_s:g} s '
                   'per cause; all are counted in status)')
        return True
