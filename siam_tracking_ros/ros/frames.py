"""Received frames: a stamp-keyed history and a one-slot mailbox for the tracking worker.

Frames are stored as received messages and decoded lazily (and at most once), so the
subscription callback only files them away and returns.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable

import numpy as np

NANOSECONDS = 1_000_000_000


def stamp_to_ns(stamp) -> int:
    """Integer nanoseconds of a ``builtin_interfaces/Time``-like object."""
    return int(stamp.sec) * NANOSECONDS + int(stamp.nanosec)


def format_stamp(stamp_ns: int) -> str:
    return f'{stamp_ns // NANOSECONDS}.{stamp_ns % NANOSECONDS:09d}'


def message_bytes(message: Any) -> int:
    """Size of an image message's payload (raw pixels or compressed stream)."""
    try:
        return len(message.data)
    except TypeError:
        return 0


class Frame:
    """One received image message, decoded on first use.

    The decoded image is cached until :meth:`release_image`; the message itself stays as it
    came (a compressed frame stays compressed), so a frame kept in the history costs its
    message bytes plus, while cached, its decoded copy.
    """

    def __init__(self, message: Any, decode: Callable[[Any], np.ndarray], received_ns: int):
        self.message = message
        self.header = message.header
        self.stamp_ns = stamp_to_ns(message.header.stamp)
        self.received_ns = received_ns
        self.message_bytes = message_bytes(message)
        self._decode = decode
        self._image: np.ndarray | None = None
        self._lock = threading.Lock()

    def image(self) -> np.ndarray:
        """The BGR frame; raises the decoder's ``ImageConversionError`` for bad messages."""
        with self._lock:
            if self._image is None:
                self._image = self._decode(self.message)
            return self._image

    def release_image(self) -> None:
        """Forget the decoded copy (decoded again if needed); a view of the message is free."""
        with self._lock:
            self._image = None

    @property
    def nbytes(self) -> int:
        """Memory the frame holds: its message and a decoded copy (a view of the message, as a
        bgr8 frame decodes to, costs nothing more)."""
        with self._lock:
            image = self._image
        decoded = image.nbytes if image is not None and image.flags.owndata else 0
        return self.message_bytes + decoded


class FrameHistory:
    """The last frames in arrival order, searchable by header stamp: at most ``size`` frames
    and ``max_bytes`` of memory (the oldest go first; the newest always stays)."""

    def __init__(self, size: int, max_bytes: int | None = None):
        if size < 1:
            raise ValueError(f'history size must be at least 1, got {size}')
        self._frames: deque[Frame] = deque(maxlen=size)
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def resize(self, size: int, max_bytes: int | None = None) -> None:
        if size < 1:
            raise ValueError(f'history size must be at least 1, got {size}')
        with self._lock:
            self._frames = deque(self._frames, maxlen=size)
            self._max_bytes = max_bytes
            self._trim_locked()

    def add(self, frame: Frame) -> None:
        with self._lock:
            self._frames.append(frame)
            self._trim_locked()

    def _trim_locked(self) -> None:
        if self._max_bytes is None:
            return
        total = sum(frame.nbytes for frame in self._frames)
        while len(self._frames) > 1 and total > self._max_bytes:
            total -= self._frames.popleft().nbytes

    def nbytes(self) -> int:
        with self._lock:
            return sum(frame.nbytes for frame in self._frames)

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()

    def newest(self) -> Frame | None:
        with self._lock:
            return self._frames[-1] if self._frames else None

    def find(self, stamp_ns: int) -> Frame | None:
        with self._lock:
            return next((f for f in reversed(self._frames) if f.stamp_ns == stamp_ns), None)

    def received_after(self, frame: Frame) -> list[Frame]:
        """Frames that arrived after ``frame`` (oldest first); empty if it left the history."""
        with self._lock:
            frames = list(self._frames)
        for index, candidate in enumerate(frames):
            if candidate is frame:
                return frames[index + 1:]
        return []

    def describe_range(self) -> str:
        """The stamps held, for error messages: 'N frames from A to B' or 'no frames'."""
        with self._lock:
            if not self._frames:
                return 'no frames received yet'
            oldest, newest = self._frames[0].stamp_ns, self._frames[-1].stamp_ns
            count = len(self._frames)
        return f'{count} frames from {format_stamp(oldest)} to {format_stamp(newest)}'


class StampGapCounter:
    """Estimates frames that never arrived from gaps between consecutive header stamps.

    The camera's period is a low quantile of the recent stamp intervals (robust to the gaps
    themselves as long as most intervals are gap-free); an interval of ``k`` periods means
    ``k - 1`` frames went missing. Stamps that do not increase (a camera restart, a replayed
    bag) start the estimate afresh.
    """

    WINDOW = 64
    MIN_INTERVALS = 8
    QUANTILE = 0.25

    def __init__(self):
        self._last_ns: int | None = None
        self._intervals: deque[int] = deque(maxlen=self.WINDOW)
        self._lock = threading.Lock()

    def observe(self, stamp_ns: int) -> int:
        """Record a received frame's stamp; returns the frames estimated missing before it."""
        with self._lock:
            last, self._last_ns = self._last_ns, stamp_ns
            if last is None:
                return 0
            interval = stamp_ns - last
            if interval <= 0:
                self._intervals.clear()
                return 0
            self._intervals.append(interval)
            if len(self._intervals) < self.MIN_INTERVALS:
                return 0
            period = float(np.quantile(np.fromiter(self._intervals, np.int64), self.QUANTILE))
        periods = int(round(interval / period))
        return max(0, periods - 1)


class LatestFrameSlot:
    """Holds only the newest frame not yet taken; a frame it replaces counts as skipped."""

    def __init__(self):
        self._frame: Frame | None = None
        self._closed = False
        self._skipped = 0
        self._condition = threading.Condition()

    @property
    def skipped(self) -> int:
        with self._condition:
            return self._skipped

    def put(self, frame: Frame) -> None:
        with self._condition:
            if self._frame is not None:
                self._skipped += 1
            self._frame = frame
            self._condition.notify()

    def take(self, timeout: float | None = None) -> Frame | None:
        """The pending frame, waiting up to ``timeout`` s; None on timeout or when closed."""
        with self._condition:
            self._condition.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            return frame

    def discard(self) -> None:
        with self._condition:
            self._frame = None

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def reopen(self) -> None:
        with self._condition:
            self._closed = False
