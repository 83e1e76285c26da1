"""The tracking state machine behind the node, free of rclpy so it is testable on its own.

One :class:`TrackingEngine` owns the tracker (a ``MultiTargetTracker``: one state per target,
one batched backbone pass per frame) and the targets, keyed by their id. Service callbacks call
:meth:`TrackingEngine.start` (validation and the tracker's init of that target on the named
frame: the request's own work), :meth:`remove` and :meth:`clear`; the node's worker thread
calls :meth:`process` for the newest frame, which tracks every target that is live, and, after
a request on an older frame, for the frames that target missed (:meth:`next_catch_up`): a
bounded number of them, one at a time and for the catching-up targets only, so the others keep
tracking the live frames meanwhile (the worker alternates) and a newer request supersedes an
older one between two frames.

What is published agrees with the replies: a target set on an older frame is reported
CATCHING_UP (no box) on live frames until it has caught up; a history frame is published only
when every target held was tracked on it (one target, or several set on that frame); and a
frame's update is dropped instead of published when a target it reports was cleared or replaced
meanwhile (:meth:`publish_if_current` checks that under the state lock, so a clear's reply is
never followed by a frame still showing the target).

Locks: ``_tracker_lock`` serialises calls into the (not thread-safe) tracker first come, first
served, so a request waits at most for the frame being tracked; ``_state_lock`` guards the small
target records. Every start gives the target a new generation: a frame tracked for an older
generation of a target is dropped instead of published. Clearing a target only drops its record
(no wait for the tracker); the tracker forgets it before its next call.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Callable

import numpy as np

from siam_tracking_ros.core.registry import replace_config
from siam_tracking_ros.core.trackers.base import TrackState
from siam_tracking_ros.ros.frames import Frame, format_stamp
from siam_tracking_ros.ros.image_codec import ImageConversionError
from siam_tracking_ros.ros.requests import (TargetRequestError, check_box, check_target_id,
                                            describe_ids, rescale_box)


class NodeState(IntEnum):
    """Mirrors the constants of siam_tracking_ros/msg/TrackerStatus and TargetStatus."""

    IDLE = 0
    TRACKING = 1
    LOST = 2
    # A target initialised on an older frame, still tracking the frames received since: its
    # box on the current frame is not known yet (TargetStatus only).
    CATCHING_UP = 3


# The tracker applies the lost / recover score thresholds itself (TrackerConfig fields).
STATE_OF_TRACK = {TrackState.TRACKING: NodeState.TRACKING, TrackState.LOST: NodeState.LOST}


@dataclass(frozen=True)
class Target:
    target_id: str
    label: str


@dataclass(frozen=True)
class TargetReport:
    """One target as a frame's update (or the heartbeat) reports it."""

    target: Target
    state: NodeState
    score: float
    # The target's box on the frame (the tracker's last estimate while LOST): only when it was
    # tracked on that frame. Detections carry it for TRACKING targets only.
    box: np.ndarray | None
    catch_up_pending: int = 0
    generation: int = 0


@dataclass(frozen=True)
class TargetUpdate:
    """The outcome of one frame: what the node publishes for it (one report per target held,
    in the order the targets were set)."""

    frame: Frame
    targets: tuple[TargetReport, ...] = ()
    # Time the node spent on the frame: decoding and the batched pass over its targets.
    frame_time_ms: float = 0.0

    @classmethod
    def single(cls, frame: Frame, state: NodeState, score: float, box, target: Target | None):
        """The update of a frame with at most one target (IDLE: none)."""
        if target is None or state == NodeState.IDLE:
            return cls(frame)
        return cls(frame, (TargetReport(target, state, score, box),))

    @property
    def state(self) -> NodeState:
        return summary_state(self.targets)

    @property
    def score(self) -> float:
        return max((report.score for report in self.targets), default=0.0)

    @property
    def target(self) -> Target | None:
        """The target when exactly one is held."""
        return self.targets[0].target if len(self.targets) == 1 else None

    @property
    def box(self) -> np.ndarray | None:
        """The box of the only target, when it has one on this frame."""
        return self.targets[0].box if len(self.targets) == 1 else None

    @property
    def catch_up_pending(self) -> int:
        return sum(report.catch_up_pending for report in self.targets)


def summary_state(reports) -> NodeState:
    """IDLE without targets, TRACKING while any target is tracked (or catching up), else LOST."""
    if not reports:
        return NodeState.IDLE
    if any(report.state in (NodeState.TRACKING, NodeState.CATCHING_UP) for report in reports):
        return NodeState.TRACKING
    return NodeState.LOST


@dataclass(frozen=True)
class EngineLimits:
    """Bounds of the engine's work (node parameters of the same names)."""

    # Catching up after a request on an older frame stops after this many frames or seconds
    # and continues with the newest frame.
    catch_up_max_frames: int = 30
    catch_up_max_s: float = 2.0
    # Consecutive frames of another size than the tracked stream before the targets move to
    # the new size; fewer are dropped as glitches.
    size_change_frames: int = 10
    # Targets tracked at once; a request for one more is refused.
    max_targets: int = 8


@dataclass
class CatchUp:
    """Frames received after a request's frame, to be tracked before the live ones."""

    origin: Frame
    frames: deque
    started: float
    total: int
    tracked: int = 0


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


# The tracker's key of the unnamed target ('' id): MultiTargetTracker ids are non-empty, and no
# valid target id holds a control character (requests.check_target_id), so none collides.
UNNAMED_KEY = '\x00'


def tracker_key(target_id: str) -> str:
    return target_id or UNNAMED_KEY


def target_id_of(key: str) -> str:
    return '' if key == UNNAMED_KEY else key


def _ignore(_cause: str, _message: str, amount: int = 1) -> None:
    pass


def _shape_text(shape) -> str:
    return f'{shape[1]}x{shape[0]}'


def _box_text(box) -> str:
    return f'({", ".join(f"{v:.1f}" for v in box)})'


@dataclass
class _TargetTrack:
    """One target's record, guarded by the state lock."""

    target: Target
    generation: int
    box: np.ndarray
    last_frame: Frame
    state: NodeState = NodeState.TRACKING
    score: float = 1.0
    catch_up: CatchUp | None = None

    @property
    def live(self) -> bool:
        return self.catch_up is None

    def report(self, frame: Frame | None) -> TargetReport:
        """The target as an update of ``frame`` reports it: with its box when it was tracked on
        that frame, CATCHING_UP when it is still behind (``frame=None``: the heartbeat)."""
        pending = len(self.catch_up.frames) if self.catch_up is not None else 0
        if frame is not None and self.last_frame is frame:
            return TargetReport(self.target, self.state, self.score, self.box, pending,
                                self.generation)
        state = NodeState.CATCHING_UP if self.catch_up is not None else self.state
        return TargetReport(self.target, state, self.score, None, pending, self.generation)


@dataclass
class _Targets:
    """Every target's record plus what they share (the stream's size), under the state lock."""

    tracks: dict = field(default_factory=dict)  # target_id -> _TargetTrack, in setting order
    shape: tuple | None = None
    mismatches: int = 0
    # The newest live frame taken while every target was catching up: tracked once one is live.
    held: Frame | None = None
    next_generation: int = 1
    # While the node is inactive: no target is held, none is started, no frame is tracked.
    suspended: bool = False

    def clear(self) -> list[str]:
        cleared = list(self.tracks)
        self.tracks.clear()
        self.held = None
        return cleared

    def live(self) -> list[_TargetTrack]:
        return [track for track in self.tracks.values() if track.live]

    def generations(self) -> dict[str, int]:
        return {track_id: track.generation for track_id, track in self.tracks.items()}


class TrackingEngine:
    """Tracker + targets + their states, driven by the node's worker and service callbacks.

    ``tracker`` is a ``MultiTargetTracker`` (``add`` / ``remove`` / ``track(image, ids)`` /
    ``tracker(id)`` / ``target_ids``). ``report(cause, message, amount=1)`` receives every
    dropped frame and bound reached (the node's throttled, counting reporter).
    """

    def __init__(self, tracker, tracker_name: str, limits: EngineLimits = EngineLimits(),
                 report: Callable = _ignore, clock: Callable[[], float] = time.monotonic,
                 device: str = 'cpu'):
        self._tracker = tracker
        self._tracker_name, self._device = tracker_name, str(device)
        self.limits = limits
        self._report, self._clock = report, clock
        self._tracker_lock = FifoLock()
        self._state_lock = threading.Lock()
        self._targets = _Targets()
        # lost / recover thresholds set at run time, applied to every target's tracker.
        self._thresholds: dict | None = None

    # -- read-only views -------------------------------------------------------------------
    @property
    def tracker_name(self) -> str:
        return self._tracker_name

    @property
    def device(self) -> str:
        return self._device

    @property
    def state(self) -> NodeState:
        return summary_state(self.snapshot())

    @property
    def target(self) -> Target | None:
        """The target when exactly one is held."""
        reports = self.snapshot()
        return reports[0].target if len(reports) == 1 else None

    @property
    def target_ids(self) -> list[str]:
        with self._state_lock:
            return list(self._targets.tracks)

    @property
    def catch_up_pending(self) -> int:
        return sum(report.catch_up_pending for report in self.snapshot())

    def has_live_targets(self) -> bool:
        """Whether some target tracks the live frames (the worker then interleaves them with
        the catch-up of the others)."""
        with self._state_lock:
            return bool(self._targets.live())

    def snapshot(self) -> tuple[TargetReport, ...]:
        """Every target as the heartbeat reports it."""
        with self._state_lock:
            return tuple(track.report(None) for track in self._targets.tracks.values())

    def publish_heartbeat(self, publish: Callable[[tuple], None]) -> None:
        """Call ``publish(reports)`` with every target as the heartbeat reports it, under the
        state lock: a reply that set or cleared a target is never followed by a heartbeat
        taken before it."""
        with self._state_lock:
            publish(tuple(track.report(None) for track in self._targets.tracks.values()))

    def set_thresholds(self, lost: float, recover: float) -> None:
        """New LOST / recover score thresholds for every target (their trackers' config)."""
        with self._tracker_lock:
            self._thresholds = {'lost_threshold': lost, 'recover_threshold': recover}
            for key in self._tracker.target_ids:
                self._apply_thresholds(target_id_of(key))

    def _apply_thresholds(self, target_id: str) -> None:
        if self._thresholds is not None:
            tracker = self._tracker.tracker(tracker_key(target_id))
            tracker.config = replace_config(tracker.config, **self._thresholds)

    # -- target control (service callbacks) ------------------------------------------------
    def start(self, frame: Frame, box, target: Target, later_frames=()) -> TargetUpdate:
        """Initialise ``target`` on ``frame`` (replacing the target of the same id); the worker
        then catches it up over ``later_frames`` while the other targets keep tracking.

        Raises TargetRequestError for a bad id or box, a target over ``max_targets``, a frame
        of another size than the other targets', or a tracker that fails to initialise; the
        decoder's ImageConversionError for an undecodable frame. The targets are unchanged
        then, except after a failed init, which drops the target of that id.
        """
        target_id = check_target_id(target.target_id)
        image = frame.image()
        checked_box = check_box(box, image.shape)
        later = deque(later_frames)
        with self._tracker_lock:
            self._check_room(target_id, image.shape[:2], frame)
            self._forget_cleared_locked()
            try:
                self._tracker.add(tracker_key(target_id), image, checked_box)
                self._apply_thresholds(target_id)
            except Exception as error:  # the tracker's state of this id is unknown: drop it
                self.remove(target_id, missing_ok=True)
                raise TargetRequestError(
                    f'the tracker failed to initialise ({type(error).__name__}: {error}); '
                    f'target {target_id!r} is not tracked') from error
            with self._state_lock:
                targets = self._targets
                self._refuse_if_suspended_locked(target_id)
                catch_up = CatchUp(frame, later, self._clock(), len(later)) if later else None
                track = _TargetTrack(target, targets.next_generation, checked_box, frame,
                                     catch_up=catch_up)
                targets.next_generation += 1
                targets.tracks[target_id] = track
                if len(targets.tracks) == 1:
                    targets.shape, targets.mismatches, targets.held = image.shape[:2], 0, None
                return TargetUpdate(frame, tuple(t.report(frame)
                                                 for t in targets.tracks.values()))

    def _check_room(self, target_id: str, shape: tuple, frame: Frame) -> None:
        """Refuse a new target beyond max_targets, or on a frame of another size than the
        stream the other targets are tracked on."""
        with self._state_lock:
            targets = self._targets
            self._refuse_if_suspended_locked(target_id)
            others = [track_id for track_id in targets.tracks if track_id != target_id]
            limit = self.limits.max_targets
            if target_id not in targets.tracks and len(others) >= limit:
                raise TargetRequestError(
                    f'max_targets ({limit}) targets are tracked already ({describe_ids(others)});'
                    f' clear one (clear_target_id) or raise max_targets')
            if others and shape != targets.shape:
                raise TargetRequestError(
                    f'frame {format_stamp(frame.stamp_ns)} is {_shape_text(shape)} but the '
                    f'other targets ({describe_ids(others)}) are tracked on a '
                    f'{_shape_text(targets.shape)} stream')

    def _refuse_if_suspended_locked(self, target_id: str) -> None:
        # The tracker may have initialised the target already: it forgets it before its next
        # call, as it does a cleared one.
        if self._targets.suspended:
            raise TargetRequestError(f'the node was deactivated while target {target_id!r} '
                                     'waited for the tracker; it is not tracked')

    def remove(self, target_id: str, missing_ok: bool = False) -> None:
        """Stop tracking ``target_id``; TargetRequestError naming the ids tracked when none has
        that id (unless ``missing_ok``)."""
        with self._state_lock:
            tracks = self._targets.tracks
            if tracks.pop(target_id, None) is None and not missing_ok:
                tracked = f'tracked: {describe_ids(tracks)}' if tracks else 'none is'
                raise TargetRequestError(f'no target with id {target_id!r} is tracked '
                                         f'({tracked})')
            if not tracks:
                self._targets.held = None

    def clear(self) -> list[str]:
        """Stop tracking every target; the ids that were tracked."""
        with self._state_lock:
            return self._targets.clear()

    def suspend(self) -> list[str]:
        """Stop tracking every target and refuse new ones until :meth:`resume` (the node is
        inactive); the ids that were tracked. Nothing waits for the tracker: a request or frame
        in progress meanwhile ends without a target and without an update to publish, so the
        node deactivates without waiting for the frame being tracked."""
        with self._state_lock:
            self._targets.suspended = True
            return self._targets.clear()

    def resume(self) -> None:
        """Accept targets and frames again, starting with none."""
        with self._state_lock:
            self._targets.clear()
            self._targets.suspended = False

    def _forget_cleared_locked(self) -> None:
        """Drop from the tracker the targets cleared since its last call (tracker lock held)."""
        with self._state_lock:
            kept = set(self._targets.tracks)
        for key in list(self._tracker.target_ids):
            if target_id_of(key) not in kept:
                self._tracker.remove(key)

    # -- per frame (the worker) ------------------------------------------------------------
    def next_catch_up(self) -> tuple[Frame, tuple | None] | None:
        """The next frame to catch up over and the targets (id, generation) it is for; or the
        live frame held while every target was catching up, once one is live (None instead of
        targets); or None.

        A frame several catching-up targets missed is tracked for them together. Past its bound
        a target's remaining frames are abandoned (reported) and it joins the live frames.
        """
        abandoned = []
        with self._state_lock:
            targets = self._targets
            for track in targets.tracks.values():
                if track.catch_up is not None and self._past_bound(track.catch_up):
                    abandoned.append((track.target.target_id, track.catch_up,
                                      len(track.catch_up.frames),
                                      self._clock() - track.catch_up.started))
                    track.catch_up.frames.clear()
            behind = [track for track in targets.tracks.values()
                      if track.catch_up is not None and track.catch_up.frames]
            for track in targets.tracks.values():
                if track.catch_up is not None and not track.catch_up.frames:
                    track.catch_up = None
            item = None
            if targets.held is not None and targets.live():
                item, targets.held = (targets.held, None), None
            elif behind:
                frame = min((track.catch_up.frames[0] for track in behind),
                            key=lambda f: f.received_ns)
                group = [track for track in behind if track.catch_up.frames[0] is frame]
                for track in group:
                    track.catch_up.frames.popleft()
                    track.catch_up.tracked += 1
                item = frame, tuple((track.target.target_id, track.generation)
                                    for track in group)
        for target_id, catch_up, count, elapsed in abandoned:
            self._report_abandoned(target_id, catch_up, count, elapsed)
        return item

    def _past_bound(self, catch_up: CatchUp) -> bool:
        limits = self.limits
        return bool(catch_up.frames) and (
            catch_up.tracked >= limits.catch_up_max_frames
            or self._clock() - catch_up.started > limits.catch_up_max_s)

    def _report_abandoned(self, target_id, catch_up: CatchUp, count: int, elapsed: float):
        limits = self.limits
        named = f'target {target_id!r} ' if target_id else ''
        self._report('catch_up_bound', (
            f'catching up {named}from frame {format_stamp(catch_up.origin.stamp_ns)}: tracked '
            f'{catch_up.tracked} of {catch_up.total} later frames in {elapsed:.2f} s (bounds: '
            f'{limits.catch_up_max_frames} frames, {limits.catch_up_max_s:g} s); '
            f'{count} left untracked, continuing with the newest frame'), count)

    def process(self, frame: Frame, catching_up: tuple | None = None) -> TargetUpdate | None:
        """Track ``frame``: a live frame for every live target (IDLE when no target is set), or
        a history frame for the ``catching_up`` targets ((id, generation) pairs from
        :meth:`next_catch_up`). The update to publish, or None when the frame is dropped
        (reported), stale, for targets cleared meanwhile, held for after the catch-up, or a
        history frame not every target was tracked on."""
        started = time.perf_counter()
        with self._state_lock:
            targets = self._targets
            if targets.suspended:
                return None
            if catching_up is None and targets.tracks and not targets.live():
                targets.held = frame
                return None
            idle = not targets.tracks
        try:
            image = frame.image()
        except ImageConversionError as error:
            self._report(error.cause, f'dropping frame {format_stamp(frame.stamp_ns)}: {error}')
            return None
        if idle:
            return None if catching_up is not None else self._idle_update(frame, started)
        with self._tracker_lock:
            self._forget_cleared_locked()
            update = self._track_locked(frame, image, catching_up)
        if update is None:
            return None
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        return TargetUpdate(update.frame, update.targets, elapsed_ms)

    def publish_if_current(self, update: TargetUpdate, publish: Callable) -> bool:
        """Call ``publish(update)`` unless a target it reports was cleared or replaced, or one
        was set, since it was made: checked under the state lock, so a reply that cleared or
        set a target is never contradicted by a frame published after it."""
        reported = {report.target.target_id: report.generation for report in update.targets}
        with self._state_lock:
            if self._targets.suspended or reported != self._targets.generations():
                return False
            publish(update)
            return True

    def _idle_update(self, frame: Frame, started: float) -> TargetUpdate | None:
        """The IDLE update of a frame decoded while no target was set, or None when a target
        was set meanwhile: publishing IDLE then would contradict the reply that set it."""
        with self._state_lock:
            if self._targets.tracks or self._targets.suspended:
                return None
        return TargetUpdate(frame, (), (time.perf_counter() - started) * 1000.0)

    def _targets_of_frame(self, frame: Frame, catching_up: tuple | None) -> list | None:
        """The targets to track on ``frame`` (state lock held), or None when it is not to be
        tracked: a live frame older than a target's last one, a history frame no target it was
        for still waits for."""
        targets = self._targets
        if catching_up is not None:
            tracks = [targets.tracks.get(target_id) for target_id, _ in catching_up]
            chosen = [track for track, (_, generation) in zip(tracks, catching_up)
                      if track is not None and track.generation == generation
                      and track.catch_up is not None]
            return chosen or None
        live = targets.live()
        if not live:
            targets.held = frame  # a stamped request made every target catch up meanwhile
            return None
        if any(frame.received_ns <= track.last_frame.received_ns for track in live):
            return None
        return live

    def _track_locked(self, frame: Frame, image: np.ndarray, catching_up) -> TargetUpdate | None:
        with self._state_lock:
            targets = self._targets
            chosen = self._targets_of_frame(frame, catching_up)
            if chosen is None:
                return None
            if image.shape[:2] != targets.shape:
                targets.mismatches += 1
                if targets.mismatches >= self.limits.size_change_frames:
                    return self._move_to_new_size_locked(frame, image)
                mismatches, shape = targets.mismatches, targets.shape
            else:
                mismatches = 0
            generations = {track.target.target_id: track.generation for track in chosen}
        if mismatches:
            self._report('size_mismatch', (
                f'dropping frame {format_stamp(frame.stamp_ns)}: {_shape_text(image.shape)} is '
                f'not the size of the tracked stream ({_shape_text(shape)}); {mismatches} in a '
                f'row, the targets move to the new size after {self.limits.size_change_frames}'))
            return None
        try:
            results = self._tracker.track(image, [tracker_key(i) for i in generations])
        except Exception as error:  # a tracker failure on one frame must not stop the node
            return self._drop_failed(frame, generations, error)
        with self._state_lock:
            return self._commit_locked(frame, generations, results, catching_up is not None)

    def _commit_locked(self, frame: Frame, generations: dict, results: dict,
                       history_frame: bool) -> TargetUpdate | None:
        """Store the pass's results (state lock held); the frame's update, or None when it
        would contradict the targets held now."""
        targets = self._targets
        current = {target_id: track for target_id, track in targets.tracks.items()
                   if generations.get(target_id) == track.generation}
        for target_id, track in current.items():
            result = results[tracker_key(target_id)]
            track.state = STATE_OF_TRACK[result.state]
            track.box = np.asarray(result.box, dtype=np.float64)
            track.score = float(result.score)
            track.last_frame = frame
        targets.mismatches = 0
        if len(current) != len(generations):
            return None  # a target of this pass was cleared or replaced while it ran
        if history_frame and len(current) != len(targets.tracks):
            return None  # the live targets are past this frame: its update would omit them
        return TargetUpdate(frame, tuple(track.report(frame)
                                         for track in targets.tracks.values()))

    def _drop_failed(self, frame: Frame, generations: dict, error: Exception):
        """The tracker raised on a pass: its targets are cleared (their state is unknown); the
        IDLE update when no target is left, else None (the others were not tracked on it)."""
        with self._state_lock:
            tracks = self._targets.tracks
            failed = [target_id for target_id, generation in generations.items()
                      if target_id in tracks and tracks[target_id].generation == generation]
            for target_id in failed:
                del tracks[target_id]
            left = bool(tracks)
        which = f'target {describe_ids(failed)}' if len(failed) == 1 else \
            f'targets {describe_ids(failed)}'
        self._report('tracker_error', f'tracking frame {format_stamp(frame.stamp_ns)} failed, '
                                      f'{which} cleared: {error}')
        if left or not failed:
            return None
        return TargetUpdate(frame)

    def _move_to_new_size_locked(self, frame: Frame, image: np.ndarray) -> TargetUpdate | None:
        """A sustained size change (state lock held, tracker lock held): every target is
        re-initialised on this frame with its last box scaled to the new size (its catch-up
        ends), or cleared if that no longer makes a valid box."""
        targets = self._targets
        old_shape, new_shape = targets.shape, image.shape[:2]
        change = (f'the stream changed from {_shape_text(old_shape)} to '
                  f'{_shape_text(new_shape)} for {targets.mismatches} frames in a row')
        for target_id, track in list(targets.tracks.items()):
            named = f'target {target_id!r}' if target_id else 'target'
            try:
                box = check_box(rescale_box(track.box, old_shape, new_shape), new_shape)
                self._tracker.add(tracker_key(target_id), image, box)
                self._apply_thresholds(target_id)
            except Exception as error:  # a box the new size cannot hold, or a failing tracker
                del targets.tracks[target_id]
                self._report('size_change', f'{change}: {named} cleared ({error})')
                continue
            track.box, track.score, track.state = box, 1.0, NodeState.TRACKING
            track.last_frame, track.catch_up = frame, None
            self._report('size_change', (
                f'{change}: {named} re-initialised on frame {format_stamp(frame.stamp_ns)} with '
                f'its last box scaled to {_box_text(box)}'))
        targets.shape, targets.mismatches, targets.held = new_shape, 0, None
        return TargetUpdate(frame, tuple(track.report(frame)
                                         for track in targets.tracks.values()))

    # -- model swap ------------------------------------------------------------------------
    def swap_tracker(self, tracker, tracker_name: str, newest: Frame | None,
                     device: str = 'cpu') -> None:
        """Use ``tracker`` from now on; every target restarts on it from its last box on the
        newest frame (a target that frame cannot serve is cleared; catch-ups end)."""
        with self._tracker_lock:
            with self._state_lock:
                tracks = list(self._targets.tracks.items())
            image = self._newest_image(newest) if tracks else None
            restarted = {}
            for target_id, track in tracks:
                if image is None:
                    break
                try:
                    tracker.add(tracker_key(target_id), image, check_box(track.box, image.shape))
                except Exception:  # a box the frame cannot hold, a failing tracker: cleared
                    continue
                restarted[target_id] = track.generation
            self._tracker, self._tracker_name, self._device = tracker, tracker_name, str(device)
            with self._state_lock:
                targets = self._targets
                for target_id, track in list(targets.tracks.items()):
                    if restarted.get(target_id) != track.generation:
                        del targets.tracks[target_id]
                        continue
                    track.last_frame, track.catch_up = newest, None
                if image is not None:
                    targets.shape, targets.mismatches = image.shape[:2], 0
                targets.held = None
            self._forget_cleared_locked()
            for key in self._tracker.target_ids:
                self._apply_thresholds(target_id_of(key))

    @staticmethod
    def _newest_image(newest: Frame | None) -> np.ndarray | None:
        if newest is None:
            return None
        try:
            return newest.image()
        except ImageConversionError:
            return None
