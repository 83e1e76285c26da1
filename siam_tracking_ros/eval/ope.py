"""One-pass evaluation (OPE): run trackers over a dataset, save their boxes, score and report them.

Protocol (OTB / UAV123): the tracker is initialised on the first frame with the ground-truth box
(converted from the published 1-based convention to the 0-based tracker API), then tracks every
following frame once, never re-initialised. Its boxes are converted back to 1-based and written as
``<out>/<tracker>/<seq>.txt`` (one ``x,y,w,h`` line per frame, the first line being the initial
box), the layout the UAV123 / pysot toolkits read.

Speed is that of the tracking step alone: ``time.perf_counter`` around ``track()`` (after a CUDA
synchronise when running on a GPU); frame decoding and initialisation are not counted.
Memory is the growth of the process's peak resident set (``ru_maxrss``) while the tracker is built
and run on CPU, or ``torch.cuda.max_memory_allocated`` on CUDA.
"""
from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence as SequenceType

import numpy as np
import torch
from tqdm import tqdm

from siam_tracking_ros.core import boxes
from siam_tracking_ros.eval import metrics, plots
from siam_tracking_ros.eval.datasets import Dataset, Sequence, read_ground_truth
from siam_tracking_ros.eval.report import format_table, write_csv, write_json

RESULTS_JSON = 'results.json'
RESULTS_CSV = 'results.csv'
OVERALL = 'OVERALL'
# Boxes are written with 3 decimals; scores are computed from these rounded values so that
# re-scoring the text files reproduces the reported figures exactly.
BOX_DECIMALS = 3
CSV_HEADERS = ('tracker', 'sequence', 'auc', 'precision_20', 'norm_precision', 'fps', 'frames',
               'scored_frames', 'peak_memory_mb')


@dataclass(frozen=True, eq=False)
class SequenceRun:
    """A tracker's output on one sequence: 1-based boxes and the time spent in ``track()``."""

    name: str
    boxes: np.ndarray
    track_seconds: float

    @property
    def tracked_frames(self) -> int:
        return len(self.boxes) - 1  # the first frame is the initialisation, not tracked

    @property
    def fps(self) -> float:
        return self.tracked_frames / self.track_seconds if self.track_seconds > 0 else float('nan')


class PeakMemory:
    """Peak memory used while the ``with`` block runs, in MiB (see the module notes)."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.megabytes = float('nan')
        self._start_kib = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._start_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc_info) -> None:
        if self.device.type == 'cuda':
            self.megabytes = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            # ru_maxrss is in KiB on Linux.
            grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self._start_kib
            self.megabytes = grown_kib / 1024


def _synchronise(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def round_boxes(box_array: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(box_array, dtype=np.float64), BOX_DECIMALS)


def initial_box(sequence: Sequence) -> np.ndarray:
    """The 0-based first-frame box the tracker is initialised with."""
    first = sequence.ground_truth[0]
    if not metrics.visible_mask(first[None])[0]:
        raise ValueError(f'sequence {sequence.name}: the first frame has no ground-truth box '
                         f'({first.tolist()}); one-pass evaluation starts from it')
    return boxes.one_based_to_zero_based(first)


def timed_tracking(tracker: Any, frames: Iterable[np.ndarray], device: torch.device,
                   progress: tqdm | None = None) -> tuple[np.ndarray, float]:
    """Call ``tracker.track`` on each frame (already initialised).

    Returns the 0-based boxes ``(n, 4)`` and the seconds spent inside ``track()`` alone (frame
    decoding, done by the ``frames`` iterator, is not counted).
    """
    device = torch.device(device)
    tracked, seconds = [], 0.0
    for frame in frames:
        start = time.perf_counter()
        result = tracker.track(frame)
        _synchronise(device)
        seconds += time.perf_counter() - start
        tracked.append(np.asarray(result.box, np.float64))
        if progress is not None:
            progress.update(1)
    return np.asarray(tracked, np.float64).reshape(-1, 4), seconds


def track_sequence(tracker: Any, sequence: Sequence, device: torch.device,
                   progress: tqdm | None = None) -> SequenceRun:
    """Initialise ``tracker`` on frame 1 and track the rest once; boxes come back 1-based."""
    tracker.init(sequence.read_frame(0), tuple(float(v) for v in initial_box(sequence)))
    frames = (sequence.read_frame(index) for index in range(1, len(sequence)))
    tracked, seconds = timed_tracking(tracker, frames, device, progress)
    predicted = np.concatenate([sequence.ground_truth[:1], boxes.zero_based_to_one_based(tracked)])
    return SequenceRun(sequence.name, round_boxes(predicted), seconds)


def write_boxes(path: Path, box_array: np.ndarray) -> None:
    """One ``x,y,w,h`` line per frame; values round-trip exactly through ``read_ground_truth``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [','.join(repr(float(v)) for v in row) for row in round_boxes(box_array)]
    path.write_text('\n'.join(lines) + '\n')


def score_sequences(boxes_by_sequence: dict[str, np.ndarray],
                    dataset: Dataset) -> dict[str, metrics.Score]:
    """Score each named box array against the dataset's ground truth of that sequence."""
    scores = {}
    for name, predicted in boxes_by_sequence.items():
        try:
            scores[name] = metrics.score_sequence(predicted, dataset[name].ground_truth)
        except ValueError as error:
            raise ValueError(f'sequence {name}: {error}') from None
    return scores


def _score_entry(score: metrics.Score, fps: float, frames: int) -> dict:
    entry = score.summary()
    entry.update(fps=fps, frames=frames, curves={
        'success': score.success.tolist(), 'precision': score.precision.tolist(),
        'norm_precision': score.norm_precision.tolist()})
    return entry


def tracker_entry(runs: SequenceType[SequenceRun], dataset: Dataset,
                  peak_memory_mb: float) -> dict:
    """Per-sequence and overall figures of one tracker, as stored in results.json."""
    scores = score_sequences({run.name: run.boxes for run in runs}, dataset)
    total_seconds = sum(run.track_seconds for run in runs)
    total_tracked = sum(run.tracked_frames for run in runs)
    sequences = {run.name: _score_entry(scores[run.name], run.fps, len(run.boxes))
                 for run in runs}
    # Overall speed pools all tracked frames (total frames / total track() time).
    overall_fps = total_tracked / total_seconds if total_seconds > 0 else float('nan')
    overall = _score_entry(metrics.mean_score(list(scores.values())), overall_fps,
                           sum(len(run.boxes) for run in runs))
    overall['peak_memory_mb'] = peak_memory_mb
    return {'overall': overall, 'sequences': sequences}


def evaluate_trackers(tracker_names: SequenceType[str], build: Callable[[str], Any],
                      dataset: Dataset, out_dir: Path, device: torch.device,
                      progress: bool = True, settings: dict | None = None) -> dict:
    """Run OPE for each tracker (built by ``build(name)``), write boxes, JSON, CSV and plots.

    ``settings`` (e.g. weights, overrides, frame limit) is stored in results.json as given.
    Returns the results.json content.
    """
    out_dir = Path(out_dir)
    device = torch.device(device)
    total_frames = sum(len(sequence) - 1 for sequence in dataset)
    report = {'dataset': dataset.name, 'device': str(device), 'settings': settings or {},
              'memory': 'cuda max_memory_allocated' if device.type == 'cuda'
              else 'growth of process peak RSS (ru_maxrss)',
              'thresholds': _thresholds(), 'trackers': {}}
    for name in tracker_names:
        with PeakMemory(device) as memory, \
                tqdm(total=total_frames, desc=name, unit='frame', disable=not progress,
                     dynamic_ncols=True) as bar:
            tracker = build(name)
            runs = [track_sequence(tracker, sequence, device, bar) for sequence in dataset]
        del tracker
        for run in runs:
            write_boxes(out_dir / name / f'{run.name}.txt', run.boxes)
        report['trackers'][name] = tracker_entry(runs, dataset, memory.megabytes)
        write_results(out_dir, report)  # after each tracker, so finished work is kept
    return report


def _thresholds() -> dict:
    return {'success': metrics.SUCCESS_THRESHOLDS.tolist(),
            'precision': metrics.PRECISION_THRESHOLDS.tolist(),
            'norm_precision': metrics.NORM_PRECISION_THRESHOLDS.tolist()}


def csv_rows(report: dict) -> list[list]:
    rows = []
    for tracker, entry in report['trackers'].items():
        named = [(OVERALL, entry['overall'])] + list(entry['sequences'].items())
        for sequence, figures in named:
            rows.append([tracker, sequence] + [figures.get(key) for key in CSV_HEADERS[2:]])
    return rows


def write_results(out_dir: Path, report: dict) -> None:
    """results.json, results.csv and the success / precision plots of every tracker."""
    out_dir = Path(out_dir)
    write_json(out_dir / RESULTS_JSON, report)
    write_csv(out_dir / RESULTS_CSV, CSV_HEADERS, csv_rows(report))
    plots.plot_report(report, out_dir)


def summary_table(report: dict) -> str:
    """The end-of-run table: one line per tracker with its overall figures."""
    headers = ('tracker', 'AUC', 'P@20', 'norm P', 'fps', 'frames')
    rows = [(name, e['overall']['auc'], e['overall']['precision_20'],
             e['overall']['norm_precision'], e['overall']['fps'], e['overall']['frames'])
            for name, e in report['trackers'].items()]
    return format_table(headers, rows)


def rescore_results(results_dir: Path, dataset: Dataset) -> dict[str, dict]:
    """Score the box files ``<results_dir>/<tracker>/<seq>.txt`` again from scratch.

    Returns ``{tracker: {'sequences': {seq: Score}, 'overall': Score}}``. Pass the dataset cut to
    the same frame limit the results were produced with (``Dataset.truncated``).
    """
    results_dir = Path(results_dir)
    tracker_dirs = sorted(p for p in results_dir.iterdir() if p.is_dir() and any(p.glob('*.txt')))
    if not tracker_dirs:
        raise FileNotFoundError(f'no <tracker>/<sequence>.txt result files in {results_dir}')
    rescored = {}
    for tracker_dir in tracker_dirs:
        boxes_by_sequence = {path.stem: read_ground_truth(path)
                             for path in sorted(tracker_dir.glob('*.txt'))}
        scores = score_sequences(boxes_by_sequence, dataset)
        rescored[tracker_dir.name] = {'sequences': scores,
                                      'overall': metrics.mean_score(list(scores.values()))}
    return rescored
