"""Scoring replay runs: published detections against the bag's ground truth.

Detections are matched to frames by header stamp (the node stamps its output with the stamp of
the image it tracked). The box a frame is scored with depends on the mode:

* ``lockstep``: the detection for that frame; a frame whose detection never came is a miss.
* ``realtime``: the detection for that frame when the node produced one; otherwise the last
  detection received before the next frame went out, which is what a consumer of the topic
  would act on at that time. An empty array (target lost) is a miss either way.

The first frame is scored with the box the target was initialised with, as in one-pass
evaluation. OPE figures come from :mod:`siam_tracking_ros.eval.metrics`.

A multi-target run is scored target by target (:func:`score_run_targets`), each as a run of its
own named ``<seq>/<target>`` (as ``siamtrack eval`` names them): its rows of the run's
detections (each array's detection with that id, none when the array lacks it, see
:mod:`~siam_tracking_ros.bag.runlog`) go through the same matching against its own ground
truth, so a frame where it is LOST or not reported is a miss. Its latency, rate and drops are
those of the arrays, shared by the run's targets.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siam_tracking_ros.bag import reader, runlog
from siam_tracking_ros.eval import datasets, metrics

NAN_BOX = (np.nan, np.nan, np.nan, np.nan)


@dataclass(frozen=True)
class LatencyStats:
    """Image stamp to receipt of its detection, milliseconds (NaN when nothing was received)."""

    count: int
    p50_ms: float
    p95_ms: float
    max_ms: float

    @classmethod
    def of(cls, latencies_ms) -> LatencyStats:
        values = np.asarray(latencies_ms, dtype=np.float64)
        if values.size == 0:
            return cls(0, np.nan, np.nan, np.nan)
        return cls(int(values.size), float(np.percentile(values, 50)),
                   float(np.percentile(values, 95)), float(values.max()))

    def summary(self) -> dict:
        return {'latency_count': self.count, 'latency_p50_ms': self.p50_ms,
                'latency_p95_ms': self.p95_ms, 'latency_max_ms': self.max_ms}


@dataclass(frozen=True, eq=False)
class RunScore:
    run_dir: Path
    info: runlog.RunInfo
    boxes: np.ndarray          # N x 4, 0-based, NaN where the frame is a miss
    ground_truth: np.ndarray   # N x 4, 0-based, NaN where the target is absent
    score: metrics.Score
    latencies_ms: np.ndarray
    fps: float
    published: int             # frames published after the initial one
    dropped: int               # of those, frames with no detection of their own
    target: str = ''           # the target scored, in a multi-target run

    @property
    def name(self) -> str:
        """The sequence, or ``<seq>/<target>`` for a target of a multi-target run."""
        if not self.target:
            return self.info.sequence
        return f'{self.info.sequence}{datasets.TARGET_SEPARATOR}{self.target}'

    def summary(self) -> dict:
        return {'tracker': self.info.tracker, 'sequence': self.name,
                'mode': self.info.mode, 'rate': self.info.rate, **self.score.summary(),
                'fps': self.fps, 'published': self.published, 'dropped': self.dropped,
                **self.latency.summary()}

    @property
    def latency(self) -> LatencyStats:
        return LatencyStats.of(self.latencies_ms)


def detections_by_stamp(detections) -> dict[int, runlog.ReceivedDetection]:
    """The first detection received for each stamp (a repeat for the same frame is ignored)."""
    matched = {}
    for detection in sorted(detections, key=lambda d: d.receipt_ns):
        matched.setdefault(detection.stamp_ns, detection)
    return matched


def _box_of(detection) -> tuple:
    return detection.box if detection is not None and detection.has_box else NAN_BOX


def _last_received_before(detections_by_receipt, receipt_times, deadline_ns: int):
    position = bisect.bisect_right(receipt_times, deadline_ns)
    return detections_by_receipt[position - 1] if position else None


def tracker_boxes(frames, detections, init_box, mode: str) -> np.ndarray:
    """Per-frame 0-based boxes the run delivered, following the mode's matching rule."""
    if mode not in runlog.MODES:
        raise ValueError(f"mode must be one of {', '.join(runlog.MODES)}, got '{mode}'")
    own = detections_by_stamp(detections)
    by_receipt = sorted(detections, key=lambda d: d.receipt_ns)
    receipt_times = [d.receipt_ns for d in by_receipt]
    frames = sorted(frames, key=lambda f: f.index)
    result = [tuple(float(v) for v in init_box)]
    for position, frame in enumerate(frames[1:], start=1):
        detection = own.get(frame.stamp_ns)
        if detection is None and mode == 'realtime':
            following = frames[position + 1].publish_ns if position + 1 < len(frames) else None
            deadline = following if following is not None else (receipt_times or [0])[-1]
            detection = _last_received_before(by_receipt, receipt_times, deadline)
        result.append(_box_of(detection))
    return np.array(result, dtype=np.float64)


def latencies_ms(frames, detections) -> np.ndarray:
    """Stamp-to-receipt latency of each detection answering a published frame (initial frame
    excluded: the node answers it by initialising, not tracking)."""
    own = detections_by_stamp(detections)
    return np.array([(own[f.stamp_ns].receipt_ns - f.stamp_ns) / 1e6
                     for f in frames if f.index > 0 and f.stamp_ns in own], dtype=np.float64)


def output_rate(frames, detections) -> float:
    """Detections per second over the run, from the first tracked frame going out to the last
    detection arriving (the throughput the replayed node delivered)."""
    own = detections_by_stamp(detections)
    tracked = [f for f in frames if f.index > 0]
    answered = [own[f.stamp_ns].receipt_ns for f in tracked if f.stamp_ns in own]
    if not answered:
        return float('nan')
    span_s = (max(answered) - min(f.stamp_ns for f in tracked)) / 1e9
    return len(answered) / span_s if span_s > 0 else float('nan')


def dropped_count(frames, detections) -> int:
    """Published frames (after the initial one) that never got a detection of their own."""
    own = detections_by_stamp(detections)
    return sum(1 for f in frames if f.index > 0 and f.stamp_ns not in own)


def _check_complete(frames, frame_count: int, run_dir: Path) -> None:
    indices = sorted(f.index for f in frames)
    if indices != list(range(frame_count)):
        raise runlog.RunLogError(
            f'run {run_dir} published {len(indices)} of the bag\'s {frame_count} frames; '
            'score complete runs only')


def rows_of_target(detections, target_id: str) -> list[runlog.ReceivedDetection]:
    """A multi-target run's detection rows for one target."""
    return [detection for detection in detections if detection.target_id == target_id]


def _read_run(run_dir: Path):
    """A complete run's info, frames, detections and the bag it replayed."""
    info = runlog.read_info(run_dir)
    frames = runlog.read_frames(run_dir)
    detections = runlog.read_detections(run_dir)
    bag = reader.bag_info(Path(info.bag))
    _check_complete(frames, bag.frame_count, run_dir)
    return info, frames, detections, bag


def _score(run_dir: Path, info: runlog.RunInfo, frames, detections, init_box, ground_truth,
           target: str = '') -> RunScore:
    boxes = tracker_boxes(frames, detections, init_box, info.mode)
    return RunScore(run_dir=run_dir, info=info, boxes=boxes, ground_truth=ground_truth,
                    score=metrics.score_sequence(boxes, ground_truth),
                    latencies_ms=latencies_ms(frames, detections),
                    fps=output_rate(frames, detections),
                    published=len(frames) - 1, dropped=dropped_count(frames, detections),
                    target=target)


def score_run(run_dir: Path) -> RunScore:
    """Score one single-target run folder against the ground truth of the bag it replayed."""
    run_dir = Path(run_dir)
    targets = runlog.read_info(run_dir).targets
    if targets:
        raise runlog.RunLogError(f'run {run_dir} tracked {len(targets)} targets; score it with '
                                 'score_run_targets (one score per target)')
    [run] = score_run_targets(run_dir)
    return run


def score_run_targets(run_dir: Path) -> list[RunScore]:
    """One score per target of a run folder, in the order they were set (a single-target run:
    the one :func:`score_run` gives)."""
    run_dir = Path(run_dir)
    info, frames, detections, bag = _read_run(run_dir)
    if not info.targets:
        return [_score(run_dir, info, frames, detections, info.init_box,
                       reader.read_ground_truth(bag))]
    truths = reader.read_target_ground_truth(bag)
    missing = [target_id for target_id in info.target_ids if target_id not in truths]
    if missing:
        raise runlog.RunLogError(f'run {run_dir} tracked target(s) {", ".join(missing)}, which '
                                 f'the bag {bag.path} has no ground truth of')
    return [_score(run_dir, info, frames, rows_of_target(detections, target_id), box,
                   truths[target_id], target_id)
            for target_id, box in info.targets]
