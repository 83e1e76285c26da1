"""The tracking state machine behind the node, free of rclpy so it is testable on its own.

One :class:`TrackingEngine` owns the current tracker and the target. Service callbacks call
:meth:`TrackingEngine.start` (validation and the tracker's init on the named frame: the
request's own work) and :meth:`clear`; the node's worker thread calls :meth:`process` for the
newest frame and, after a request on an older frame, for the frames received since
(:meth:`next_catch_up`), a bounded number of them, one at a time, so a request never waits for
a catch-up and a newer request supersedes an older one between two frames.

Locks: ``_tracker_lock`` serialises calls into the (not thread-safe) tracker first come, first
served, so a request waits at most for the frame being tracked; ``_state_lock`` guards the small
target record. Every start or clear bumps a generation counter: a frame tracked for an older
target is dropped instead of published.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from typing import Callable

import numpy as np

from siam_tracking_ros.core.registry import replace_config
from siam_tracking_ros.core.trackers.base import TrackState
from siam_tracking_ros.ros.frames import Frame, format_stamp
from siam_tracking_ros.ros.image_codec import ImageConversionError
from siam_tracking_ros.ros.requests import TargetRequestError, check_box, rescale_box


class NodeState(IntEnum):
    """Mirrors the constants of siam_tracking_ros/msg/TrackerStatus."""

    IDLE = 0
    TRACKING = 1
    LOST = 2


# The tracker applies the lost / recover score thresholds itself (TrackerConfig fields).
STATE_OF_TRACK = {TrackState.TRACKING: NodeState.TRACKING, TrackState.LOST: NodeState.LOST}


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


@dataclass(frozen=True)
class EngineLimits:
    """Bounds of the engine's work (node parameters of the same names)."""

    # Catching up after a request on an older frame stops after this many frames or seconds
    # and continues with the newest frame.
    catch_up_max_frames: int = 30
    catch_up_max_s: float = 2.0
    # Consecutive frames of another size than the tracked stream before the target moves to
    # the new size; fewer are dropped as glitches.
    size_change_frames: int = 10


@dataclass
class CatchUp:
    """Frames received after a request's frame, to be tracked before the newest one."""

    origin: Frame
    frames: deque
    started: float
    total: int
    tracked: int = 0
    # The newest frame that arrived while catching up: tracked once the catch-up ends.
    newest: Frame | None = None


class FifoLock:
    """A lock granted in request order: a service waiting on it cannot be overtaken again and
    again by the worker releasing and re-taking it between frames (threading.Lock is unfair)."""

    def __init__(self):
        self._condition = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> 'FifoLock':
        with self._condition:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._condition.wait_for(lambda: self._serving == ticket)
        return self

    def __exit__(self, *exc_info) -> None:
        with self._condition:
            self._serving += 1
            self._condition.notify_all()


def _ignore(_cause: str, _message: str, amount: int = 1) -> None:
    pass


def _shape_text(shape) -> str:
    return f'{shape[1]}x{shape[0]}'


@dataclass
class _Track:
    """The target record guarded by the state lock."""

    target: Target | None = None
    state: NodeState = NodeState.IDLE
    box: np.ndarray | None = None
    score: float = 0.0
    last_frame: Frame | None = None
    shape: tuple | None = None
    mismatches: int = 0
    catch_up: CatchUp | None = None
    generation: int = 0


class TrackingEngine:
    """Tracker + target + state, driven by the node's worker and service callbacks.

    ``report(cause, message, amount=1)`` receives every dropped frame and bound reached (the
    node's throttled, counting reporter).
    """

    def __init__(self, tracker, tracker_name: str, limits: EngineLimits = EngineLimits(),
                 report: Callable = _ignore, clock: Callable[[], float] = time.monotonic):
        self._tracker = tracker
        self._tracker_name = tracker_name
        self.limits = limits
        self._report, self._clock = report, clock
        self._tracker_lock = FifoLock()
        self._state_lock = threading.Lock()
        self._track = _Track()

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
            return self._track.state

    @property
    def target(self) -> Target | None:
        with self._state_lock:
            return self._track.target

    @property
    def catch_up_pending(self) -> int:
        with self._state_lock:
            catch_up = self._track.catch_up
            return len(catch_up.frames) if catch_up is not None else 0

    def snapshot(self) -> tuple[NodeState, float, np.ndarray | None, Target | None]:
        with self._state_lock:
            track = self._track
            return track.state, track.score, track.box, track.target

    def set_thresholds(self, lost: float, recover: float) -> None:
        """New LOST / recover score thresholds for the running tracker (its config fields)."""
        with self._tracker_lock:
            self._tracker.config = replace_config(
                self._tracker.config, lost_threshold=lost, recover_threshold=recover)

    # -- target control (service callbacks) ------------------------------------------------
    def start(self, frame: Frame, box, target: Target, later_frames=()) -> TargetUpdate:
        """Initialise on ``frame``; the worker then catches up over ``later_frames``.

        Raises TargetRequestError for a bad box or a tracker that fails to initialise, the
        decoder's ImageConversionError for an undecodable frame; the state is unchanged then,
        except after a failed init, which leaves the engine IDLE.
        """
        image = frame.image()
        checked_box = check_box(box, image.shape)
        later = deque(later_frames)
        with self._tracker_lock:
            try:
                self._tracker.init(image, checked_box)
            except Exception as error:  # the tracker's state is unknown now: drop the target
                self.clear()
                raise TargetRequestError(
                    f'the tracker failed to initialise ({type(error).__name__}: {error}); '
                    'no target is set') from error
            with self._state_lock:
                generation = self._track.generation + 1
                catch_up = (CatchUp(frame, later, self._clock(), len(later)) if later else None)
                self._track = _Track(target, NodeState.TRACKING, checked_box, 1.0, frame,
                                     image.shape[:2], 0, catch_up, generation)
        return TargetUpdate(frame, NodeState.TRACKING, 1.0, checked_box, target)

    def clear(self) -> None:
        with self._state_lock:
            self._track = _Track(generation=self._track.generation + 1)

    # -- per frame (the worker) ------------------------------------------------------------
    def next_catch_up(self) -> tuple[Frame, int] | None:
        """The next frame to catch up over and the generation it belongs to, or None.

        Past the bound the remaining frames are abandoned (reported) and the newest frame
        that arrived meanwhile comes next.
        """
        with self._state_lock:
            catch_up, generation = self._track.catch_up, self._track.generation
            if catch_up is None:
                return None
            elapsed = self._clock() - catch_up.started
            limits = self.limits
            if catch_up.frames and (catch_up.tracked >= limits.catch_up_max_frames
                                    or elapsed > limits.catch_up_max_s):
                abandoned = len(catch_up.frames)
                catch_up.frames.clear()
            else:
                abandoned = 0
            if catch_up.frames:
                catch_up.tracked += 1
                return catch_up.frames.popleft(), generation
            self._track.catch_up = None
        if abandoned:
            self._report('catch_up_bound', (
                f'catching up from frame {format_stamp(catch_up.origin.stamp_ns)}: tracked '
                f'{catch_up.tracked} of {catch_up.total} later frames in {elapsed:.2f} s (bounds: '
                f'{limits.catch_up_max_frames} frames, {limits.catch_up_max_s:g} s); '
                f'{abandoned} left untracked, continuing with the newest frame'), abandoned)
        return (catch_up.newest, generation) if catch_up.newest is not None else None

    def process(self, frame: Frame, generation: int | None = None) -> TargetUpdate | None:
        """Track ``frame`` (IDLE when no target is set): the update to publish, or None when
        the frame is dropped (reported), stale, for an older target, or kept for after the
        catch-up. ``generation`` names the target a catch-up frame belongs to."""
        with self._state_lock:
            track = self._track
            if generation is None and track.catch_up is not None:
                track.catch_up.newest = frame
                return None
            idle = track.target is None
            generation = track.generation if generation is None else generation
        try:
            image = frame.image()
        except ImageConversionError as error:
            self._report(error.cause,
                         f'dropping frame {format_stamp(frame.stamp_ns)}: {error}')
            return None
        if idle:
            return self._idle_if_current(frame, generation)
        with self._tracker_lock:
            return self._track_locked(frame, image, generation)

    def _track_locked(self, frame: Frame, image: np.ndarray, generation: int):
        with self._state_lock:
            track = self._track
            if generation != track.generation or track.target is None:
                return None
            if track.last_frame is not None and frame.received_ns <= track.last_frame.received_ns:
                return None
            if image.shape[:2] != track.shape:
                track.mismatches += 1
                if track.mismatches < self.limits.size_change_frames:
                    mismatches, shape = track.mismatches, track.shape
                else:
                    return self._move_to_new_size_locked(frame, image)
            else:
                mismatches = 0
        if mismatches:
            self._report('size_mismatch', (
                f'dropping frame {format_stamp(frame.stamp_ns)}: {_shape_text(image.shape)} is '
                f'not the size of the tracked stream ({_shape_text(shape)}); {mismatches} in a '
                f'row, the target moves to the new size after {self.limits.size_change_frames}'))
            return None
        try:
            result = self._tracker.track(image)
        except Exception as error:  # a tracker failure on one frame must not stop the node
            self._report('tracker_error', f'tracking frame {format_stamp(frame.stamp_ns)} '
                                          f'failed, target cleared: {error}')
            return self._clear_if_current(frame, generation)
        with self._state_lock:
            track = self._track
            if generation != track.generation:
                return None
            track.state = STATE_OF_TRACK[result.state]
            track.box = np.asarray(result.box, dtype=np.float64)
            track.score = float(result.score)
            track.last_frame, track.mismatches = frame, 0
            return TargetUpdate(frame, track.state, track.score, track.box, track.target)

    def _idle_if_current(self, frame: Frame, generation: int) -> TargetUpdate | None:
        """The IDLE update of a frame decoded while no target was set, or None when a target
        was set meanwhile: publishing IDLE then would contradict the reply that set it."""
        with self._state_lock:
            if generation != self._track.generation:
                return None
        return TargetUpdate(frame, NodeState.IDLE, 0.0, None, None)

    def _clear_if_current(self, frame: Frame, generation: int) -> TargetUpdate | None:
        with self._state_lock:
            if generation != self._track.generation:
                return None
            self._track = _Track(generation=generation + 1)
        return TargetUpdate(frame, NodeState.IDLE, 0.0, None, None)

    def _move_to_new_size_locked(self, frame: Frame, image: np.ndarray) -> TargetUpdate | None:
        """A sustained size change (state lock held, tracker lock held): re-initialise on this
        frame with the last box scaled to the new size, or clear the target if it no longer
        makes a valid box."""
        track = self._track
        old_shape, new_shape = track.shape, image.shape[:2]
        change = (f'the stream changed from {_shape_text(old_shape)} to '
                  f'{_shape_text(new_shape)} for {track.mismatches} frames in a row')
        try:
            box = check_box(rescale_box(track.box, old_shape, new_shape), new_shape)
            self._tracker.init(image, box)
        except Exception as error:  # a box the new size cannot hold, or a failing tracker
            self._track = _Track(generation=track.generation + 1)
            self._report('size_change', f'{change}: target cleared ({error})')
            return TargetUpdate(frame, NodeState.IDLE, 0.0, None, None)
        track.box, track.score, track.state = box, 1.0, NodeState.TRACKING
        track.last_frame, track.shape, track.mismatches = frame, new_shape, 0
        track.catch_up = None
        self._report('size_change', (
            f'{change}: target re-initialised on frame {format_stamp(frame.stamp_ns)} with its '
            f'last box scaled to ({", ".join(f"{v:.1f}" for v in box)})'))
        return TargetUpdate(frame, NodeState.TRACKING, 1.0, box, track.target)

    # -- model swap ------------------------------------------------------------------------
    def swap_tracker(self, tracker, tracker_name: str, newest: Frame | None) -> None:
        """Use ``tracker`` from now on; a tracked target restarts on it from its last box on
        the newest frame (falling back to IDLE when that frame cannot serve)."""
        with self._tracker_lock:
            with self._state_lock:
                box, target = self._track.box, self._track.target
            if target is not None and box is not None and newest is not None:
                try:
                    image = newest.image()
                    tracker.init(image, check_box(box, image.shape))
                except ValueError:
                    self.clear()
                else:
                    with self._state_lock:
                        self._track.last_frame, self._track.shape = newest, image.shape[:2]
                        self._track.catch_up, self._track.mismatches = None, 0
            self._tracker, self._tracker_name = tracker, tracker_name
