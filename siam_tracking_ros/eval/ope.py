"""One-pass evaluation (OPE): run trackers over a dataset, save their boxes, score and report them.

Protocol (OTB / UAV123): the tracker is initialised on the first frame with the ground-truth box
(converted from the published 1-based convention to the 0-based tracker API), then tracks every
following frame once, never re-initialised. Its boxes are converted back to 1-based and written as
``<out>/<tracker>/<seq>.txt`` (one ``x,y,w,h`` line per frame, the first line being the initial
box), the layout the UAV123 / pysot toolkits read (``convention='pysot'``: as pysot's test script
reads and writes them, ``eval.conventions``). Beside each goes ``<seq>.json``: what produced
it (tracker, weights, config), its timing and scores. Both are written as the sequence finishes,
so an interrupted evaluation resumes from the sequences done (``resume``); sequences can run in
several processes (``workers``), each with a tracker built for that sequence.

Speed is that of the tracking step alone: ``time.perf_counter`` around ``track()`` (after a CUDA
synchronise when running on a GPU); frame decoding and initialisation are not counted.
Memory is the growth of the process's peak resident set (``ru_maxrss``) while the tracker is built
and run on a sequence on CPU, or ``torch.cuda.max_memory_allocated`` on CUDA; a tracker's figure
is the largest over its sequences.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pickle
import queue
import resource
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence as SequenceType

import numpy as np
import torch
from tqdm import tqdm

from siam_tracking_ros.eval import metrics, plots
from siam_tracking_ros.eval.conventions import DEFAULT_CONVENTION, convention as box_convention
from siam_tracking_ros.eval.datasets import (Dataset, Sequence, read_ground_truth,
                                             uav123_annotations)
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


def initial_box(sequence: Sequence, convention: str = DEFAULT_CONVENTION) -> np.ndarray:
    """The 0-based first-frame box the tracker is initialised with, read from the ground truth
    in ``convention`` (``eval.conventions``)."""
    first = sequence.ground_truth[0]
    if not metrics.visible_mask(first[None])[0]:
        raise ValueError(f'sequence {sequence.name}: the first frame has no ground-truth box '
                         f'({first.tolist()}); one-pass evaluation starts from it')
    return box_convention(convention).tracker_box(first)


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
                   progress: tqdm | None = None,
                   convention: str = DEFAULT_CONVENTION) -> SequenceRun:
    """Initialise ``tracker`` on frame 1 and track the rest once; boxes come back as result
    files write them in ``convention`` (1-based in the package's)."""
    rule = box_convention(convention)
    tracker.init(sequence.read_frame(0),
                 tuple(float(v) for v in initial_box(sequence, convention)))
    frames = (sequence.read_frame(index) for index in range(1, len(sequence)))
    tracked, seconds = timed_tracking(tracker, frames, device, progress)
    predicted = np.concatenate([rule.first_line(sequence.ground_truth[:1]),
                                rule.result_boxes(tracked)])
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


class ResumeMismatchError(ValueError):
    """--resume over results that another tracker, weights file or config produced."""


@dataclass(frozen=True)
class SequenceTask:
    """One tracker on one sequence: the unit that is run, saved and resumed."""

    tracker: str
    sequence: Sequence
    convention: str = DEFAULT_CONVENTION  # how boxes are read and written (eval.conventions)


@dataclass(frozen=True, eq=False)
class SequenceOutcome:
    tracker: str
    run: SequenceRun
    peak_memory_mb: float


def sequence_paths(out_dir: Path, tracker: str, sequence: str) -> tuple[Path, Path]:
    """``<out>/<tracker>/<seq>.txt`` (the boxes) and ``<seq>.json`` (its record, written last)."""
    folder = Path(out_dir) / tracker
    return folder / f'{sequence}.txt', folder / f'{sequence}.json'


def file_digest(path: Path) -> str:
    """SHA-256 of a file (weights, profiles): what identifies it in a resumable run's record."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file, so that a killed run never leaves half a file."""
    temporary = path.with_name(f'.{path.name}.partial')
    write(temporary)
    os.replace(temporary, path)


def save_sequence(out_dir: Path, outcome: SequenceOutcome, identity: dict,
                  sequence: Sequence) -> None:
    """Boxes, then the sequence's record (identity, timing, scores): the record marks it done."""
    boxes_path, record_path = sequence_paths(out_dir, outcome.tracker, outcome.run.name)
    boxes_path.parent.mkdir(parents=True, exist_ok=True)
    run = outcome.run
    replace_atomically(boxes_path, lambda path: write_boxes(path, run.boxes))
    score = metrics.score_sequence(run.boxes, sequence.ground_truth)
    record = {'identity': identity, 'frames': len(run.boxes), 'track_seconds': run.track_seconds,
              'peak_memory_mb': outcome.peak_memory_mb,
              'scores': _score_entry(score, run.fps, len(run.boxes))}
    replace_atomically(record_path, lambda path: write_json(path, record))


def _differences(stored: dict, wanted: dict) -> list[str]:
    keys = sorted(set(stored) | set(wanted))
    return [f'{key}: {stored.get(key)!r} there, {wanted.get(key)!r} now' for key in keys
            if stored.get(key) != wanted.get(key)]


def load_finished(out_dir: Path, task: SequenceTask, identity: dict) -> SequenceOutcome | None:
    """The saved outcome of ``task`` when its record is complete; None when it must run.

    Raises ResumeMismatchError when the record was made with another identity (tracker, weights,
    config...): mixing those in one report would be wrong, and overwriting them silently too.
    """
    boxes_path, record_path = sequence_paths(out_dir, task.tracker, task.sequence.name)
    if not (record_path.is_file() and boxes_path.is_file()):
        return None
    record = json.loads(record_path.read_text())
    differences = _differences(record.get('identity', {}), identity)
    if differences:
        raise ResumeMismatchError(
            f'{record_path} was made with other settings ({"; ".join(differences)}); resume with '
            'the same ones, or evaluate into another --out folder')
    saved = read_ground_truth(boxes_path)
    if len(saved) != len(task.sequence) or record.get('frames') != len(saved):
        return None  # another frame limit: the sequence is run again
    run = SequenceRun(task.sequence.name, round_boxes(saved), float(record['track_seconds']))
    return SequenceOutcome(task.tracker, run, float(record['peak_memory_mb']))


def run_task(task: SequenceTask, build: Callable[[str], Any], device: torch.device,
             progress=None) -> SequenceOutcome:
    """A freshly built tracker on one sequence, so that a sequence's boxes never depend on which
    sequences the same process tracked before (sequential, parallel and resumed runs agree)."""
    with PeakMemory(device) as memory:
        tracker = build(task.tracker)
        run = track_sequence(tracker, task.sequence, device, progress, task.convention)
        del tracker
    return SequenceOutcome(task.tracker, run, memory.megabytes)


class _QueueProgress:
    """``tqdm.update`` stand-in in a worker process: frame counts go to the parent's bar."""

    def __init__(self, queue):
        self.queue = queue

    def update(self, count: int = 1) -> None:
        self.queue.put(count)


# State of one worker process, set once by _start_worker (a worker runs one task at a time).
_WORKER: dict = {}


def _start_worker(build, device, progress_queue, threads: int) -> None:
    # Ctrl-C reaches the whole process group; the parent alone decides to stop the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _WORKER.update(build=build, device=torch.device(device),
                   progress=_QueueProgress(progress_queue))


def _run_in_worker(task: SequenceTask) -> SequenceOutcome:
    return run_task(task, _WORKER['build'], _WORKER['device'], _WORKER['progress'])


def threads_per_worker(workers: int) -> int:
    """The processor's cores shared out between the worker processes (at least one each)."""
    return max(1, len(os.sched_getaffinity(0)) // workers)


def run_in_processes(tasks: SequenceType[SequenceTask], build: Callable[[str], Any],
                     device: torch.device, workers: int, bar: tqdm,
                     finished: Callable[[SequenceOutcome], None]) -> None:
    """Run ``tasks`` in ``workers`` processes, calling ``finished`` here as each one ends.

    ``build`` must be picklable (a module-level function or class instance): the workers are
    started fresh (spawn), not forked from a process that already runs torch threads.
    """
    try:
        pickle.dumps(build)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise ValueError(f'--workers needs a tracker builder that can be sent to another process '
                         f'({error})') from None
    context = multiprocessing.get_context('spawn')
    progress_queue = context.Queue()
    pool = context.Pool(workers, initializer=_start_worker,
                        initargs=(build, str(device), progress_queue, threads_per_worker(workers)))
    try:
        pending = [pool.apply_async(_run_in_worker, (task,)) for task in tasks]
        while pending:
            try:
                bar.update(progress_queue.get(timeout=0.2))
            except queue.Empty:
                pass
            for result in [result for result in pending if result.ready()]:
                pending.remove(result)
                finished(result.get())  # re-raises a worker's exception here
        pool.close()
    finally:
        pool.terminate()
        pool.join()
    while not progress_queue.empty():
        bar.update(progress_queue.get())


def _sequence_identity(identity: dict, tracker: str) -> dict:
    return {'tracker': tracker, **identity}


def evaluate_trackers(tracker_names: SequenceType[str], build: Callable[[str], Any],
                      dataset: Dataset, out_dir: Path, device: torch.device,
                      progress: bool = True, settings: dict | None = None,
                      identities: dict[str, dict] | None = None, resume: bool = False,
                      workers: int = 1, convention: str = DEFAULT_CONVENTION) -> dict:
    """Run OPE for each tracker (built by ``build(name)``), write boxes, JSON, CSV and plots.

    Each sequence's boxes and record (``<out>/<tracker>/<seq>.txt`` / ``.json``) are written as
    soon as it finishes, and results.json / results.csv / the plots as soon as a tracker has all
    its sequences: an interrupted evaluation keeps every finished sequence. ``identities`` gives
    per tracker what its boxes depend on (weights, config...; recorded in every sequence record);
    with ``resume`` the sequences whose record matches it are read back instead of run again.
    ``workers`` > 1 runs sequences in that many processes (``build`` must then be picklable).
    ``convention`` says how the ground truth is read and the boxes are written
    (``eval.conventions``). ``settings`` (e.g. weights, overrides, frame limit) is stored in
    results.json as given. Returns the results.json content.
    """
    if workers < 1:
        raise ValueError(f'workers must be at least 1, got {workers}')
    out_dir = Path(out_dir)
    device = torch.device(device)
    # Through JSON, as it is stored, so that a stored identity compares equal to this one.
    identity_of = {name: json.loads(json.dumps(
        _sequence_identity((identities or {}).get(name, {}), name), default=str))
        for name in tracker_names}
    report = {'dataset': dataset.name, 'device': str(device), 'settings': settings or {},
              'memory': 'cuda max_memory_allocated' if device.type == 'cuda'
              else 'largest growth of the process peak RSS (ru_maxrss) over one sequence '
                   '(tracker built and run)',
              'workers': workers, 'box_convention': box_convention(convention).name,
              'thresholds': _thresholds(), 'trackers': {}}
    tasks = [SequenceTask(name, sequence, convention) for name in tracker_names
             for sequence in dataset]
    outcomes: dict[str, dict[str, SequenceOutcome]] = {name: {} for name in tracker_names}
    if resume:
        for task in tasks:
            done = load_finished(out_dir, task, identity_of[task.tracker])
            if done is not None:
                outcomes[task.tracker][task.sequence.name] = done
    to_run = [task for task in tasks if task.sequence.name not in outcomes[task.tracker]]

    def finished(outcome: SequenceOutcome) -> None:
        save_sequence(out_dir, outcome, identity_of[outcome.tracker], dataset[outcome.run.name])
        outcomes[outcome.tracker][outcome.run.name] = outcome
        bar.set_postfix_str(f'{outcome.tracker} {outcome.run.name} done', refresh=False)
        if len(outcomes[outcome.tracker]) == len(dataset):
            _report_finished_trackers(report, tracker_names, outcomes, dataset, out_dir)

    total = sum(len(task.sequence) - 1 for task in tasks)
    remaining = sum(len(task.sequence) - 1 for task in to_run)
    with tqdm(total=total, initial=total - remaining, desc='eval', unit='frame',
              disable=not progress, dynamic_ncols=True) as bar:
        if any(len(done) == len(dataset) for done in outcomes.values()):
            _report_finished_trackers(report, tracker_names, outcomes, dataset, out_dir)
        if workers == 1:
            for task in to_run:
                finished(run_task(task, build, device, bar))
        else:
            run_in_processes(to_run, build, device, workers, bar, finished)
    return report


def _report_finished_trackers(report: dict, tracker_names: SequenceType[str],
                              outcomes: dict[str, dict[str, SequenceOutcome]], dataset: Dataset,
                              out_dir: Path) -> None:
    """results.json, results.csv and plots for the trackers that have every sequence, in the
    order they were named."""
    report['trackers'] = {}
    for name in tracker_names:
        if len(outcomes[name]) == len(dataset):
            done = [outcomes[name][sequence.name] for sequence in dataset]
            report['trackers'][name] = tracker_entry(
                [outcome.run for outcome in done], dataset,
                max(outcome.peak_memory_mb for outcome in done))
    write_results(out_dir, report)


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
    """Score the box files ``<results_dir>/<tracker>/<seq>.txt`` (``<seq>/<target>.txt`` for a
    multi-target sequence) again from scratch.

    Returns ``{tracker: {'sequences': {seq: Score}, 'overall': Score}}``. Pass the dataset cut to
    the same frame limit the results were produced with (``Dataset.truncated``).
    """
    results_dir = Path(results_dir)
    tracker_dirs = sorted(p for p in results_dir.iterdir() if p.is_dir() and uav123_annotations(p))
    if not tracker_dirs:
        raise FileNotFoundError(f'no <tracker>/<sequence>.txt result files in {results_dir}')
    rescored = {}
    for tracker_dir in tracker_dirs:
        # <seq>.txt, and <seq>/<target>.txt of multi-target sequences: named as the dataset's
        boxes_by_sequence = {name: read_ground_truth(path)
                             for name, path in uav123_annotations(tracker_dir).items()}
        scores = score_sequences(boxes_by_sequence, dataset)
        rescored[tracker_dir.name] = {'sequences': scores,
                                      'overall': metrics.mean_score(list(scores.values()))}
    return rescored

