"""``siamtrack bench``: tracking speed of registered trackers, with OpenCV CSRT timed alongside.

Frames come from the synthetic sequence generator (a moving target seen by a moving camera), held
in memory so that only ``track()`` is timed (with a CUDA synchronise on GPU). Each tracker is
initialised on the first frame, tracks ``--warmup`` frames untimed, then ``--frames`` timed ones.
CSRT runs on the CPU over the same frames; the ``x CSRT`` column is tracker fps / CSRT fps at the
same frame size, and ``--baseline NAME`` adds a column of fps / NAME's fps (e.g. DROL-X / X).

Controlled comparisons: ``--config lost_threshold=0`` keeps every tracker out of its LOST state
(whose wider search would otherwise make the frame cost depend on how well the weights track),
and ``--repeats N`` times the trackers N times in turn and keeps each one's median, so that a
load change on a shared machine hits all of them alike.

``--node`` runs the ROS node overhead benchmark (``tools/bench_node.py``) instead.
"""
from __future__ import annotations

import argparse
import importlib
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from siam_tracking_ros.core import boxes
from siam_tracking_ros.eval.baselines import CSRT_NAME, OpenCVCsrt, csrt_available
from siam_tracking_ros.eval.ope import timed_tracking
from siam_tracking_ros.eval.report import format_table, write_json
from siam_tracking_ros.eval.synth import SynthConfig, generate_sequence
from siam_tracking_ros.tools.cli import frame_size, int_at_least, names_list
from siam_tracking_ros.tools.cmd_eval import parse_overrides

DEFAULT_SIZES = ((640, 360), (1280, 720))
NODE_BENCH_MODULE = 'siam_tracking_ros.tools.bench_node'
EXIT_UNAVAILABLE = 2


@dataclass(frozen=True)
class BenchRow:
    tracker: str
    device: str
    size: str
    fps: float
    ms_per_frame: float
    ratio_to_csrt: float | None
    ratio_to_baseline: float | None = None


def bench_frames(width: int, height: int, count: int, seed: int = 0
                 ) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` synthetic frames of a target that stays in view, and its 0-based first box."""
    config = SynthConfig(frames=count, width=width, height=height, out_of_view_probability=0.0,
                         occlusion_probability=0.0)
    sequence = generate_sequence(seed, 0, config)
    return sequence.frames, boxes.one_based_to_zero_based(sequence.ground_truth[0])


def measure_fps(tracker, frames: list[np.ndarray], first_box: np.ndarray, device: torch.device,
                warmup: int) -> float:
    """Frames per second of ``track()`` after ``warmup`` untimed frames."""
    tracker.init(frames[0], tuple(float(v) for v in first_box))
    timed_tracking(tracker, frames[1:1 + warmup], device)
    timed = frames[1 + warmup:]
    _, seconds = timed_tracking(tracker, timed, device)
    return len(timed) / seconds


def available_devices(requested: list[str] | None) -> list[torch.device]:
    from siam_tracking_ros.core.device import resolve_device

    if requested:
        return [resolve_device(name) for name in requested]
    return [torch.device('cpu')] + ([torch.device('cuda')] if torch.cuda.is_available() else [])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split('\n\n')[0].split(': ', 1)[1]
    parser.add_argument('--trackers', type=names_list,
                        help='trackers to time, comma-separated (default: every registered one)')
    parser.add_argument('--devices', type=names_list,
                        help="devices, e.g. cpu,cuda (default: cpu, and cuda when available)")
    parser.add_argument('--sizes', type=lambda text: [frame_size(s) for s in names_list(text)],
                        default=list(DEFAULT_SIZES),
                        help='frame sizes WxH, comma-separated (default 640x360,1280x720)')
    parser.add_argument('--frames', type=int_at_least(1), default=50,
                        help='timed frames per tracker and size (default 50)')
    parser.add_argument('--warmup', type=int_at_least(0), default=5,
                        help='untimed frames tracked first (default 5)')
    parser.add_argument('--threads', type=int_at_least(1),
                        help='CPU threads for torch and OpenCV (default: their own defaults)')
    parser.add_argument('--baseline', help='tracker whose fps the others are divided by (an extra '
                                           'column, e.g. --baseline siamfc_alexnet)')
    parser.add_argument('--config', nargs='+', metavar='KEY=VALUE',
                        help='tracker config overrides applied to every tracker, e.g. '
                             '--config lost_threshold=0')
    parser.add_argument('--repeats', type=int_at_least(1), default=1,
                        help='time the trackers this many times in turn; report the median')
    parser.add_argument('--json', type=Path, help='also write the figures to this JSON file')
    parser.add_argument('--node', action='store_true',
                        help='run the ROS node overhead benchmark (tools/bench_node.py) instead')


def run_node_benchmark(args: argparse.Namespace) -> int:
    try:
        module = importlib.import_module(NODE_BENCH_MODULE)
    except ModuleNotFoundError as error:
        missing = ('it is not part of this installation' if error.name == NODE_BENCH_MODULE
                   else f"it needs the Python module '{error.name}'")
        print(f'siamtrack bench: error: the node benchmark is not available: {missing}',
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    return int(module.run_node_bench(args) or 0)


def run_benchmark(trackers: list[str], devices: list[torch.device],
                  sizes: list[tuple[int, int]], frames: int, warmup: int,
                  baseline: str | None = None, overrides: dict | None = None,
                  repeats: int = 1) -> dict:
    """Time every tracker on every device and size; returns the JSON-ready figures."""
    from siam_tracking_ros.core.registry import build_tracker

    with_csrt = csrt_available()
    rows, csrt_fps = [], {}
    for width, height in sizes:
        size = f'{width}x{height}'
        clip, first_box = bench_frames(width, height, 1 + warmup + frames)
        cpu = torch.device('cpu')
        if with_csrt:
            csrt_fps[size] = measure_fps(OpenCVCsrt(), clip, first_box, cpu, warmup)
            rows.append(BenchRow(CSRT_NAME, 'cpu', size, csrt_fps[size], 1000 / csrt_fps[size],
                                 1.0))
        for device in devices:
            built = {name: build_tracker(name, device=device, **(overrides or {}))
                     for name in trackers}
            timings = {name: [] for name in trackers}
            for _ in range(repeats):
                for name, tracker in built.items():
                    timings[name].append(measure_fps(tracker, clip, first_box, device, warmup))
            fps = {name: float(np.median(values)) for name, values in timings.items()}
            for name in trackers:
                rows.append(BenchRow(
                    name, str(device), size, fps[name], 1000 / fps[name],
                    fps[name] / csrt_fps[size] if with_csrt else None,
                    fps[name] / fps[baseline] if baseline else None))
            del built
    return {'rows': [asdict(row) for row in rows], 'csrt_available': with_csrt,
            'frames': frames, 'warmup': warmup, 'repeats': repeats, 'baseline': baseline,
            'config_overrides': overrides or {}, 'torch_threads': torch.get_num_threads(),
            'cpu': platform.processor() or platform.machine(),
            'gpu': torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def run(args: argparse.Namespace) -> int:
    if args.node:
        return run_node_benchmark(args)
    from siam_tracking_ros.core.registry import list_trackers

    if args.threads:
        import cv2

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    known = list_trackers()
    trackers = args.trackers or known
    unknown = [name for name in trackers if name not in known]
    if unknown:
        raise ValueError(f'unknown tracker(s) {", ".join(unknown)}; known: {", ".join(known)}')
    if args.baseline is not None and args.baseline not in trackers:
        raise ValueError(f"--baseline {args.baseline} must be one of the timed trackers "
                         f"({', '.join(trackers)})")
    devices = available_devices(args.devices)
    if not csrt_available():
        print('OpenCV CSRT is not available in this OpenCV build (needs opencv-contrib): '
              'timing the trackers without the CSRT ratio', file=sys.stderr)
    result = run_benchmark(trackers, devices, args.sizes, args.frames, args.warmup,
                           args.baseline, parse_overrides(args.config), args.repeats)
    headers = ('tracker', 'device', 'size', 'fps', 'ms/frame', 'x CSRT')
    columns = len(headers)
    if args.baseline:
        headers += (f'x {args.baseline}',)
        columns += 1
    print(format_table(headers, [tuple(row.values())[:columns] for row in result['rows']]))
    if args.json:
        write_json(args.json, result)
        print(f'figures written to {args.json}')
    return 0
