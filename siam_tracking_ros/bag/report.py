"""Report over replay runs: one entry per tracker (its runs over the sequences), in the layout
of ``siamtrack eval``'s results.json plus the ROS figures (latency, dropped frames).

Writes ``report.json``, ``report.md`` (overall and per-sequence tables), the success / precision
plots and the per-frame boxes as ``results/<tracker>/<sequence>.txt`` (1-based, like the offline
evaluation writes them, so both can be compared line by line).

Each target of a multi-target run is an entry of its own, ``<seq>/<target>``, with its boxes in
``results/<tracker>/<seq>/<target>.txt``, and counts in the overall scores as a sequence does,
as in ``siamtrack eval``. The ROS figures (frames published and dropped, latency, output rate)
count each replay once, however many targets it scored.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from siam_tracking_ros.bag.score import LatencyStats, RunScore
from siam_tracking_ros.core import boxes
from siam_tracking_ros.eval import metrics, ope, plots
from siam_tracking_ros.eval.report import format_cell, write_json

REPORT_JSON = 'report.json'
REPORT_MARKDOWN = 'report.md'
RESULTS_DIR = 'results'


class ReportError(ValueError):
    """Runs that cannot be put into one report."""


def _replays(runs: list[RunScore]) -> list[RunScore]:
    """One scored run per replay (the targets of a multi-target run share its ROS figures)."""
    return list({run.run_dir: run for run in runs}.values())


def _ros_figures(runs: list[RunScore]) -> dict:
    runs = _replays(runs)
    latency = LatencyStats.of(np.concatenate([run.latencies_ms for run in runs]))
    return {'mode': ', '.join(sorted({run.info.mode for run in runs})),
            'published': sum(run.published for run in runs),
            'dropped': sum(run.dropped for run in runs), **latency.summary()}


def _sequence_entry(run: RunScore) -> dict:
    entry = ope._score_entry(run.score, run.fps, len(run.boxes))
    entry.update(_ros_figures([run]), run_dir=str(run.run_dir), rate=run.info.rate)
    return entry


def _tracker_entry(runs: list[RunScore]) -> dict:
    sequences = {run.name: _sequence_entry(run) for run in runs}
    replays = _replays(runs)
    answered = sum(run.published - run.dropped for run in replays)
    seconds = sum((run.published - run.dropped) / run.fps for run in replays
                  if np.isfinite(run.fps) and run.fps > 0)
    overall = ope._score_entry(metrics.mean_score([run.score for run in runs]),
                               answered / seconds if seconds > 0 else float('nan'),
                               sum(len(run.boxes) for run in runs))
    overall.update(_ros_figures(runs))
    return {'overall': overall, 'sequences': sequences}


def build_report(runs: list[RunScore], dataset: str) -> dict:
    """Group scored runs by tracker label; a tracker may not have two runs of one sequence."""
    if not runs:
        raise ReportError('no runs to report on')
    by_tracker: dict[str, list[RunScore]] = defaultdict(list)
    for run in runs:
        taken = {other.name for other in by_tracker[run.info.tracker]}
        if run.name in taken:
            raise ReportError(f'two runs of {run.name} are labelled {run.info.tracker}; '
                              'give the runs distinct tracker labels')
        by_tracker[run.info.tracker].append(run)
    return {'dataset': dataset, 'source': 'rosbag replay through the tracker node',
            'thresholds': ope._thresholds(),
            'trackers': {name: _tracker_entry(group) for name, group in by_tracker.items()}}


OVERALL_HEADERS = ('tracker', 'mode', 'sequences', 'AUC', 'P@20', 'norm P', 'frames',
                   'dropped', 'latency p50 ms', 'p95 ms', 'max ms', 'output fps')
SEQUENCE_HEADERS = ('tracker', 'sequence', 'AUC', 'P@20', 'frames', 'dropped',
                    'latency p50 ms', 'p95 ms', 'max ms')


def _markdown_table(headers, rows) -> list[str]:
    lines = ['| ' + ' | '.join(headers) + ' |', '|' + '---|' * len(headers)]
    lines += ['| ' + ' | '.join(format_cell(value) for value in row) + ' |' for row in rows]
    return lines


def overall_rows(report: dict) -> list[list]:
    rows = []
    for name, entry in report['trackers'].items():
        o = entry['overall']
        rows.append([name, o['mode'], len(entry['sequences']), o['auc'], o['precision_20'],
                     o['norm_precision'], o['frames'], o['dropped'], o['latency_p50_ms'],
                     o['latency_p95_ms'], o['latency_max_ms'], o['fps']])
    return rows


def sequence_rows(report: dict) -> list[list]:
    rows = []
    for name, entry in report['trackers'].items():
        for sequence, s in entry['sequences'].items():
            rows.append([name, sequence, s['auc'], s['precision_20'], s['frames'], s['dropped'],
                         s['latency_p50_ms'], s['latency_p95_ms'], s['latency_max_ms']])
    return rows


def markdown(report: dict) -> str:
    lines = [f'# Replay evaluation on {report["dataset"]}', '',
             'One-pass evaluation of the boxes the tracker node published, matched to the '
             'ground truth by image stamp. Latency: image stamp to receipt of its detection. '
             'Dropped: frames published without a detection of their own.', '',
             '## Overall', '']
    lines += _markdown_table(OVERALL_HEADERS, overall_rows(report))
    lines += ['', '## Per sequence', '']
    lines += _markdown_table(SEQUENCE_HEADERS, sequence_rows(report))
    lines += ['', 'Plots: success.png, precision.png, norm_precision.png.', '']
    return '\n'.join(lines)


def results_path(out_dir: Path, run: RunScore) -> Path:
    """``<out_dir>/results/<tracker>/<seq>.txt`` (``<seq>/<target>.txt`` for a target)."""
    return Path(out_dir) / RESULTS_DIR / run.info.tracker / f'{run.name}.txt'


def write_report(out_dir: Path, runs: list[RunScore], dataset: str) -> dict:
    """Write report.json, report.md, the plots and the per-frame boxes; returns the report."""
    out_dir = Path(out_dir)
    report = build_report(runs, dataset)
    for run in runs:
        ope.write_boxes(results_path(out_dir, run), boxes.zero_based_to_one_based(run.boxes))
    write_json(out_dir / REPORT_JSON, report)
    (out_dir / REPORT_MARKDOWN).write_text(markdown(report))
    plots.plot_report(report, out_dir)
    return report
