"""Timing of a tracker: frames per second, per-frame percentiles, per-stage times and the
backbone-only rate (what ``siamtrack bench`` reports; no ROS here).

``time_tracking`` runs ``init`` once, ``track`` over warm-up frames untimed, then times ``track``
on the rest. While it runs, ``StageClock`` wraps the tracker's hooks on that one instance and adds
up the wall time of each outermost hook call (a hook called from inside another counts in the
outer one), so the stages add up to the frame time minus the glue between hooks. On CUDA each
wrapped hook synchronises the device before reading the clock, which costs a little speed there.

``backbone_ms`` times ``extract_features`` alone on the last frame's search crops: the compute
floor of the network. ``fps / backbone fps`` says how close to it the whole tracker runs.

``time_multi_target`` does the same for a ``MultiTargetTracker`` with several targets: whole
frames (every target) timed, stages summed over the targets' trackers, and the backbone figure
the one batched call on all targets' crops.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

# The hooks ``SiameseTracker.track`` calls, grouped into the stages the bench prints.
STAGES = {
    'frame': ('frame_pixels', 'image_to_tensor'),
    'crop': ('search_geometry', 'crop_search'),
    'backbone': ('extract_features', 'transform_search_features', 'transform_template_features'),
    'head': ('run_head',),
    'post': ('score_map', 'modify_score_map', 'locate', 'commit'),
    'update': ('on_tracked',),
}


def synchronise(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


class StageClock:
    """Adds up the wall time of a tracker's outermost hook calls per stage while entered."""

    def __init__(self, tracker: Any):
        self.tracker = tracker
        self.device = getattr(tracker, 'device', torch.device('cpu'))
        self.seconds = {stage: 0.0 for stage in STAGES}
        self._depth = 0
        self._wrapped: list[str] = []

    def __enter__(self) -> StageClock:
        for stage, hooks in STAGES.items():
            for hook in hooks:
                if callable(getattr(self.tracker, hook, None)):
                    setattr(self.tracker, hook, self._timed(stage, getattr(self.tracker, hook)))
                    self._wrapped.append(hook)
        return self

    def __exit__(self, *exc_info) -> None:
        for hook in self._wrapped:
            delattr(self.tracker, hook)  # the instance attribute: the class method shows again
        self._wrapped = []

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)

    def _timed(self, stage: str, method):
        def timed(*args, **kwargs):
            outermost = self._depth == 0
            self._depth += 1
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._depth -= 1
                if outermost:
                    synchronise(self.device)
                    self.seconds[stage] += time.perf_counter() - start
        return timed


@dataclass
class TrackingTime:
    """One tracker's figures over the timed frames (milliseconds unless named otherwise)."""
    frames: int
    fps: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    stage_ms: dict[str, float] = field(default_factory=dict)
    backbone_ms: float | None = None

    @property
    def ratio_to_backbone(self) -> float | None:
        """Whole-tracker fps over backbone-only fps (1.0 = nothing but the backbone costs)."""
        return None if not self.backbone_ms else self.backbone_ms / self.mean_ms


def time_tracking(tracker: Any, frames: list[np.ndarray], first_box, warmup: int,
                  stages: bool = True, backbone_repeats: int = 10) -> TrackingTime:
    """Time ``tracker`` (a SiameseTracker, or any ``init``/``track`` object such as CSRT) on
    ``frames``: init on the first, ``warmup`` untimed frames, then the rest timed."""
    device = getattr(tracker, 'device', torch.device('cpu'))
    tracker.init(frames[0], tuple(float(v) for v in first_box))
    is_siamese = stages and hasattr(tracker, 'extract_features')
    result = _time_frames(tracker.track, frames[1:], warmup, device,
                          [StageClock(tracker)] if is_siamese else [])
    if is_siamese:
        result.backbone_ms = backbone_ms(tracker, frames[-1], backbone_repeats)
    return result


def time_multi_target(multi: Any, frames: list[np.ndarray], first_boxes: dict[str, Any],
                      warmup: int, backbone_repeats: int = 10) -> TrackingTime:
    """Time a ``MultiTargetTracker`` as ``time_tracking`` times one tracker: every target of
    ``first_boxes`` (id -> 0-based box) added on the first frame, then whole frames timed. The
    stages add up over all targets' trackers; ``backbone_ms`` is the one batched backbone call
    on all targets' search crops."""
    multi.clear()
    for target_id, box in first_boxes.items():
        multi.add(target_id, frames[0], tuple(float(v) for v in box))
    trackers = [multi.prototype, *(multi.tracker(target_id) for target_id in multi.target_ids)]
    result = _time_frames(multi.track, frames[1:], warmup, multi.prototype.device,
                          [StageClock(tracker) for tracker in trackers])
    result.backbone_ms = backbone_ms(multi, frames[-1], backbone_repeats)
    return result


def _time_frames(track, frames: list[np.ndarray], warmup: int, device: torch.device,
                 clocks: list[StageClock]) -> TrackingTime:
    """``track`` over ``warmup`` untimed frames, then the rest timed (with the ``clocks``'
    stage times summed over them)."""
    timed = frames[warmup:]
    if not timed:
        raise ValueError(f'need more than 1 + warmup ({warmup}) frames, got {len(frames) + 1}')
    samples = []
    with contextlib.ExitStack() as entered:
        for clock in clocks:
            entered.enter_context(clock)
        for frame in frames[:warmup]:
            track(frame)
        synchronise(device)
        for clock in clocks:
            clock.reset()
        for frame in timed:
            start = time.perf_counter()
            track(frame)
            synchronise(device)
            samples.append(time.perf_counter() - start)
    milliseconds = np.asarray(samples) * 1e3
    result = TrackingTime(frames=len(timed), fps=len(timed) / float(np.sum(samples)),
                          mean_ms=float(milliseconds.mean()),
                          p50_ms=float(np.percentile(milliseconds, 50)),
                          p95_ms=float(np.percentile(milliseconds, 95)))
    if clocks:
        result.stage_ms = {stage: sum(clock.seconds[stage] for clock in clocks) * 1e3 / len(timed)
                           for stage in STAGES}
        result.stage_ms['other'] = result.mean_ms - sum(result.stage_ms.values())
    return result


@torch.inference_mode()
def backbone_ms(tracker: Any, frame: np.ndarray, repeats: int = 10) -> float:
    """Milliseconds of ``extract_features`` on the search crops ``tracker`` would cut from
    ``frame`` now (the tracker's state is not changed). For a ``MultiTargetTracker``: its
    ``batched_features`` on all its targets' crops (the stacking, the call(s), the split)."""
    if hasattr(tracker, 'batched_features'):
        from siam_tracking_ros.core.trackers.base import FrameContext
        frames = [FrameContext(image=frame, frame_index=0,
                               crops=_search_crops(tracker.tracker(target_id), frame))
                  for target_id in tracker.target_ids]
        device = tracker.prototype.device
        features = lambda: tracker.batched_features(frames)  # noqa: E731
    else:
        crops = _search_crops(tracker, frame)
        device = tracker.device
        features = lambda: tracker.extract_features(crops)  # noqa: E731
    for _ in range(2):
        features()
    synchronise(device)
    start = time.perf_counter()
    for _ in range(repeats):
        features()
    synchronise(device)
    return (time.perf_counter() - start) * 1e3 / repeats


def _search_crops(tracker: Any, frame: np.ndarray) -> torch.Tensor:
    pixels = (tracker.frame_pixels(frame) if hasattr(tracker, 'frame_pixels')
              else tracker.image_to_tensor(frame))
    return tracker.crop_search(pixels, tracker.search_geometry())
