"""The tracking state machine behind the node, free of rclpy so it is testable on its own.

One :class:`TrackingEngine` owns the current tracker and the target. Two locks keep the
services responsive while the worker tracks a frame: ``_tracker_lock`` serialises calls into
the (not thread-safe) tracker, ``_state_lock`` guards the small target record. Clearing a
target only takes the state lock and bumps a generation counter, so a frame tracked for an
old target is dropped instead of published.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from siam_tracking_ros.core.boxes import validate_xywh
from siam_tracking_ros.core.registry import replace_config
from siam_tracking_ros.core.trackers.base import TrackState
from siam_tracking_ros.ros.frames import Frame, FrameHistory


class NodeState(IntEnum):
    """Mirrors the constants of siam_tracking_ros/msg/TrackerStatus."""

    IDLE = 0
    TRACKING = 1
    LOST = 2


# The tracker applies the lost / recover score thresholds itself (TrackerConfig fields).
STATE_OF_TRACK = {TrackState.TRACKING: NodeState.TRACKING, TrackState.LOST: NodeState.LOST}


class TargetRequestError(ValueError):
    """A target request the node refuses; ``cause`` keys the once-per-cause warning."""

    def __init__(self, cause: str, message: str):
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class Target:
    target_id: str
    label: str


@dataclass(frozen=True)
class TargetUpdate:
    """The outcome of one frame: what the node publishes for it."""

    frame: Frame
    state: NodeState
    score: float
    box: np.ndarray | None
    target: Target | None


class TrackingEngine:
    """Tracker + target + state, driven by the node's worker and service callbacks."""

    def __init__(self, tracker, tracker_name: str):
        self._tracker = tracker
        self._tracker_name = tracker_name
        self._tracker_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._target: Target | None = None
        self._state = NodeState.IDLE
        self._box: np.ndarray | None = None
        self._score = 0.0
        self._generation = 0
        self._last_frame: Frame | None = None

    # -- read-only views -------------------------------------------------------------------
    @property
    def tracker_name(self) -> str:
        return self._tracker_name

    @property
    def device(self) -> str:
        return str(getattr(self._tracker, 'device', 'cpu'))

    @property
    def state(self) -> NodeState:
        with self._state_lock:
            return self._state

    @property
    def target(self) -> Target | None:
        with self._state_lock:
            return self._target

    def set_thresholds(self, lost: float, recover: float) -> None:
        """New LOST / recover score thresholds for the running tracker (its config fields)."""
        with self._tracker_lock:
            self._tracker.config = replace_config(
                self._tracker.config, lost_threshold=lost, recover_threshold=recover)

    # -- target control --------------------------------------------------------------------
    def start(self, frame: Frame, box, target: Target, history: FrameHistory) -> TargetUpdate:
        """Initialise on ``frame`` and catch up over the frames received after it.

        Raises ValueError for a bad box and the decoder's error for a bad frame.
        """
        image = frame.image()
        checked_box = validate_xywh(box, image.shape)
        with self._tracker_lock:
            self._tracker.init(image, checked_box)
            with self._state_lock:
                self._generation += 1
                self._target = target
                self._state = NodeState.TRACKING
                self._box, self._score = checked_box, 1.0
                self._last_frame = frame
                generation = self._generation
            update = TargetUpdate(frame, NodeState.TRACKING, 1.0, checked_box, target)
            return self._catch_up(frame, history, generation) or update

    def _catch_up(self, frame: Frame, history: FrameHistory, generation: int):
        """Track, in order, the frames received after ``frame`` up to the request.

        The set is fixed when catching up starts: with a tracker slower than the camera,
        chasing frames that arrive meanwhile would never end; the worker resumes with the
        newest frame instead.
        """
        update = None
        for later in history.received_after(frame):
            update = self._track_locked(later, generation) or update
        return update

    def clear(self) -> None:
        with self._state_lock:
            self._generation += 1
            self._target = None
            self._state = NodeState.IDLE
            self._box, self._score = None, 0.0

    # -- per frame -------------------------------------------------------------------------
    def step(self, frame: Frame) -> TargetUpdate | None:
        """Track ``frame`` if a target is set; the update to publish, or None when the frame
        is older than one already tracked or the target changed meanwhile."""
        with self._state_lock:
            if self._target is None:
                return TargetUpdate(frame, NodeState.IDLE, 0.0, None, None)
            generation = self._generation
        with self._tracker_lock:
            return self._track_locked(frame, generation)

    def _track_locked(self, frame: Frame, generation: int) -> TargetUpdate | None:
        with self._state_lock:
            last = self._last_frame
        if last is not None and frame.received_ns <= last.received_ns:
            return None
        result = self._tracker.track(frame.image())
        with self._state_lock:
            if generation != self._generation:
                return None
            self._state = STATE_OF_TRACK[result.state]
            self._box = np.asarray(result.box, dtype=np.float64)
            self._score = float(result.score)
            self._last_frame = frame
            return TargetUpdate(frame, self._state, self._score, self._box, self._target)

    # -- model swap ------------------------------------------------------------------------
    def swap_tracker(self, tracker, tracker_name: str, newest: Frame | None) -> None:
        """Use ``tracker`` from now on; a tracked target restarts on it from its last box on
        the newest frame (falling back to IDLE when that frame cannot serve)."""
        with self._tracker_lock:
            with self._state_lock:
                box, target = self._box, self._target
            if target is not None and box is not None and newest is not None:
                try:
                    image = newest.image()
                    tracker.init(image, box)
                except ValueError:
                    self.clear()
                else:
                    with self._state_lock:
                        self._last_frame = newest
            self._tracker, self._tracker_name = tracker, tracker_name
