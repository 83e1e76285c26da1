"""``siamtrack bench``: tracking speed of registered trackers, with OpenCV CSRT timed alongside.

Frames come from the synthetic sequence generator (a moving target seen by a moving camera), held
in memory so that only ``track()`` is timed (with a CUDA synchronise on GPU). Each tracker is
initialised on the first frame, tracks ``--warmup`` frames untimed, then ``--frames`` timed ones,
in each precision (``--precisions``; default: fp32 and the reduced precision of the device, bf16
on a CPU with native bf16, fp16 on CUDA; the one ``auto`` picks is marked ``=auto``).

Columns: fps and mean / p95 ms per frame; ``x CSRT`` = fps / CSRT's fps at the same frame size
(OpenCV's CSRT on the CPU over the same frames; ``--nanotrack DIR`` adds OpenCV's NanoTrack v2
from the two ONNX files in DIR); ``x backbone`` = fps / the backbone-only rate (the network's
feature extraction alone on the same search crops: how close to the compute floor the whole
tracker runs). A second table splits the frame time into stages (core/benchmark.py): frame
(pixels in), crop, backbone, head, post (score map, penalties, peak, box), update (the seed
trackers' per-frame additions), other (glue between hooks).

Controlled comparisons: ``--config lost_threshold=0`` keeps every tracker out of its LOST state
(whose wider search would otherwise make the frame cost depend on how well the weights track),
``--baseline NAME`` adds a column of fps / NAME's fps (e.g. DROL-X / X), and ``--repeats N`` times
the trackers N times in turn and keeps each one's median, so that a load change on a shared
machine hits all of them alike.

``--targets 1,2,4,8`` times several targets at once instead (``core.multi_target``: every
target's search crops stacked into one backbone call per frame): per tracker, device, precision
and size, the frame time for each number of targets and its ratio to one target's (``x 1
target``), the batched backbone call alone (``backbone ms``), and the stages summed over the
targets. The first target is the synthetic sequence's; the others are boxes of its size spread
over the frame (``target_boxes``). Use ``--config lost_threshold=0`` so that no target's search
widens.

``--node`` runs the ROS node benchmark (``tools/bench_node.py``) instead: the node's fps and
image-to-detection latency next to the bare tracker's on the same frames.
"""
from __future__ import annotations

import argparse
import importlib
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from siam_tracking_ros.core import boxes
from siam_tracking_ros.core.benchmark import STAGES, TrackingTime, time_tracking
from siam_tracking_ros.core.device import PRECISIONS, check_precision, resolve_precision
from siam_tracking_ros.eval.baselines import CSRT_NAME, OpenCVCsrt, csrt_available
from siam_tracking_ros.eval.report import format_table, write_json
from siam_tracking_ros.eval.synth import SynthConfig, generate_sequence
from siam_tracking_ros.tools.cli import frame_size, int_at_least, names_list
from siam_tracking_ros.tools.cmd_eval import parse_overrides

DEFAULT_SIZES = ((640, 360), (1280, 720))
NODE_BENCH_MODULE = 'siam_tracking_ros.tools.bench_node'
EXIT_UNAVAILABLE = 2
NANOTRACK_NAME = 'opencv_nanotrack'


@dataclass(frozen=True)
class BenchRow:
    tracker: str
    device: str
    size: str
    fps: float
    ms_per_frame: float
    ratio_to_csrt: float | None
    ratio_to_baseline: float | None = None
    precision: str = 'fp32'
    auto: bool = False
    p95_ms: float | None = None
    ratio_to_backbone: float | None = None
    backbone_ms: float | None = None
    stage_ms: dict = field(default_factory=dict)


def bench_frames(width: int, height: int, count: int, seed: int = 0
                 ) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` synthetic frames of a target that stays in view, and its 0-based first box."""
    config = SynthConfig(frames=count, width=width, height=height, out_of_view_probability=0.0,
                         occlusion_probability=0.0)
    sequence = generate_sequence(seed, 0, config)
    return sequence.frames, boxes.one_based_to_zero_based(sequence.ground_truth[0])


def available_devices(requested: list[str] | None) -> list[torch.device]:
    from siam_tracking_ros.core.device import resolve_device

    if requested:
        return [resolve_device(name) for name in requested]
    return [torch.device('cpu')] + ([torch.device('cuda')] if torch.cuda.is_available() else [])


def device_precisions(device: torch.device, requested: list[str] | None) -> list[str]:
    """The resolved precisions to time on ``device`` (duplicates dropped, order kept)."""
    names = requested or ['fp32', 'auto', 'fp16' if device.type == 'cuda' else 'bf16']
    resolved = []
    for name in names:
        if name == 'fp16' and device.type != 'cuda':
            continue  # a GPU format: on the CPU it would only time fp32 again
        precision = resolve_precision(name, device)
        if precision not in resolved:
            resolved.append(precision)
    if not resolved:
        raise ValueError(f'--precisions {",".join(names)}: fp16 is a GPU precision, nothing to '
                         f'time on {device}; use fp32, bf16 or auto there')
    return resolved


class OpenCVNanoTrack:
    """OpenCV's NanoTrack v2 (``cv2.TrackerNano``) from its backbone and neck-head ONNX files."""

    name = NANOTRACK_NAME

    def __init__(self, folder: Path):
        import cv2

        onnx = sorted(Path(folder).glob('*.onnx'))
        backbone = [path for path in onnx if 'backbone' in path.name.lower()]
        head = [path for path in onnx if 'head' in path.name.lower()]
        if len(backbone) != 1 or len(head) != 1:
            raise ValueError(f'--nanotrack {folder}: expected one *backbone*.onnx and one '
                             f'*head*.onnx file (NanoTrack v2), found {[p.name for p in onnx]}')
        if not hasattr(cv2, 'TrackerNano_create'):
            raise ValueError('this OpenCV build has no TrackerNano (needs OpenCV >= 4.7 with dnn)')
        self._params = cv2.TrackerNano_Params()
        self._params.backbone, self._params.neckhead = str(backbone[0]), str(head[0])
        self._create = cv2.TrackerNano_create
        self._tracker = None

    def init(self, image_bgr: np.ndarray, box) -> None:
        self._tracker = self._create(self._params)
        x, y, w, h = (int(round(v)) for v in box)
        self._tracker.init(image_bgr, (x, y, max(w, 1), max(h, 1)))

    def track(self, image_bgr: np.ndarray):
        return self._tracker.update(image_bgr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split('\n\n')[0].split(': ', 1)[1]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = '\n\n'.join(__doc__.split('\n\n')[1:])
    parser.add_argument('--trackers', type=names_list,
                        help='trackers to time, comma-separated (default: every registered one)')
    parser.add_argument('--devices', type=names_list,
                        help="devices, e.g. cpu,cuda (default: cpu, and cuda when available)")
    parser.add_argument('--precisions', type=names_list,
                        help=f'precisions to time, comma-separated, of {", ".join(PRECISIONS)} '
                             '(default: fp32 and the reduced precision of each device)')
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
    parser.add_argument('--nanotrack', type=Path, metavar='DIR',
                        help="also time OpenCV's NanoTrack v2 from the two ONNX files in DIR")
    parser.add_argument('--targets', type=target_counts, metavar='N,N,...',
                        help='time several targets at once, for each of these numbers of '
                             'targets, e.g. 1,2,4,8 (one backbone call per frame on all crops)')
    parser.add_argument('--json', type=Path, help='also write the figures to this JSON file')
    parser.add_argument('--node', action='store_true',
                        help="time the ROS node (tools/bench_node.py) next to the bare tracker")


def target_counts(text: str) -> list[int]:
    """``--targets``: comma-separated positive numbers of targets, in the order given."""
    counts = []
    for item in names_list(text):
        if not item.isdigit() or int(item) < 1:
            raise argparse.ArgumentTypeError(f"'{item}' is not a positive number of targets")
        counts.append(int(item))
    return list(dict.fromkeys(counts))


def target_boxes(first_box, count: int, width: int, height: int) -> dict[str, np.ndarray]:
    """``count`` target boxes by id: ``first_box``, then boxes of its size with centres spread
    along two rows across the frame (distinct regions, so every target has its own crops)."""
    first_box = np.asarray(first_box, dtype=np.float64)
    size = first_box[2:]
    found = {'target0': first_box}
    for index in range(1, count):
        centre = np.array([width * index / count, height * (0.3 if index % 2 else 0.7)])
        corner = np.clip(centre - size / 2, 0.0, np.array([width, height]) - size)
        found[f'target{index}'] = np.concatenate([corner, size])
    return found


def run_target_benchmark(trackers: list[str], devices: list[torch.device],
                         sizes: list[tuple[int, int]], counts: list[int], frames: int,
                         warmup: int, overrides: dict | None = None, repeats: int = 1,
                         precisions: list[str] | None = None) -> dict:
    """Frame time against the number of targets tracked at once; the JSON-ready figures.

    The numbers of targets are timed in turn ``repeats`` times (each one's median kept), so a
    load change on a shared machine hits all of them alike."""
    from siam_tracking_ros.core.benchmark import time_multi_target
    from siam_tracking_ros.core.multi_target import MultiTargetTracker
    from siam_tracking_ros.core.registry import build_tracker

    rows = []
    for width, height in sizes:
        clip, first_box = bench_frames(width, height, 1 + warmup + frames)
        for device in devices:
            auto = resolve_precision('auto', device)
            for precision in device_precisions(device, precisions):
                for name in trackers:
                    prototype = build_tracker(name, device=device, precision=precision,
                                              **(overrides or {}))
                    multi = MultiTargetTracker(lambda: prototype)
                    timings = {count: [] for count in counts}
                    for _ in range(repeats):
                        for count in counts:
                            timings[count].append(time_multi_target(
                                multi, clip, target_boxes(first_box, count, width, height),
                                warmup))
                    figures = {count: _median_time(values) for count, values in timings.items()}
                    single = figures.get(1)
                    rows += [{'tracker': name, 'device': str(device), 'size': f'{width}x{height}',
                              'precision': precision, 'auto': precision == auto,
                              'targets': count, 'fps': timing.fps, 'ms_per_frame': timing.mean_ms,
                              'p95_ms': timing.p95_ms,
                              'ratio_to_single': (timing.mean_ms / single.mean_ms
                                                  if single else None),
                              'backbone_ms': timing.backbone_ms, 'stage_ms': timing.stage_ms}
                             for count, timing in figures.items()]
                    multi.clear()
    return {'rows': rows, 'targets': counts, 'frames': frames, 'warmup': warmup,
            'repeats': repeats, 'config_overrides': overrides or {},
            'torch_threads': torch.get_num_threads(),
            'cpu': platform.processor() or platform.machine(),
            'gpu': torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def targets_table(rows: list[dict]) -> str:
    headers = ['tracker', 'device', 'precision', 'size', 'targets', 'ms/frame', 'p95 ms',
               'x 1 target', 'backbone ms']
    lines = [[row['tracker'], row['device'], row['precision'] + ('=auto' if row['auto'] else ''),
              row['size'], row['targets'], row['ms_per_frame'], row['p95_ms'],
              row['ratio_to_single'], row['backbone_ms']] for row in rows]
    return format_table(headers, lines)


def targets_stage_table(rows: list[dict]) -> str:
    stages = list(STAGES) + ['other']
    lines = [[row['tracker'], row['precision'], row['size'], row['targets'],
              *(row['stage_ms'].get(stage) for stage in stages)] for row in rows]
    return format_table(['ms per frame in', 'precision', 'size', 'targets', *stages], lines)


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


def _median_time(times: list[TrackingTime]) -> TrackingTime:
    """The run with the median fps (its percentiles and stages stay consistent)."""
    return sorted(times, key=lambda figures: figures.fps)[len(times) // 2]


def _reference_rows(size: str, clip, first_box, warmup: int, nanotrack: Path | None
                    ) -> list[BenchRow]:
    cpu = torch.device('cpu')
    references = ([OpenCVCsrt()] if csrt_available() else []) + (
        [OpenCVNanoTrack(nanotrack)] if nanotrack else [])
    rows = []
    for tracker in references:
        figures = time_tracking(tracker, clip, first_box, warmup, stages=False)
        rows.append(BenchRow(tracker.name, str(cpu), size, figures.fps, figures.mean_ms, None,
                             p95_ms=figures.p95_ms))
    return rows


def run_benchmark(trackers: list[str], devices: list[torch.device],
                  sizes: list[tuple[int, int]], frames: int, warmup: int,
                  baseline: str | None = None, overrides: dict | None = None,
                  repeats: int = 1, precisions: list[str] | None = None,
                  nanotrack: Path | None = None) -> dict:
    """Time every tracker on every device, precision and size; returns the JSON-ready figures."""
    from siam_tracking_ros.core.registry import build_tracker

    rows = []
    for width, height in sizes:
        size = f'{width}x{height}'
        clip, first_box = bench_frames(width, height, 1 + warmup + frames)
        references = _reference_rows(size, clip, first_box, warmup, nanotrack)
        csrt = next((row.fps for row in references if row.tracker == CSRT_NAME), None)
        rows += [BenchRow(**{**asdict(row), 'ratio_to_csrt': row.fps / csrt if csrt else None})
                 for row in references]
        for device in devices:
            auto = resolve_precision('auto', device)
            for precision in device_precisions(device, precisions):
                built = {name: build_tracker(name, device=device, precision=precision,
                                             **(overrides or {})) for name in trackers}
                timings = {name: [] for name in trackers}
                for _ in range(repeats):
                    for name, tracker in built.items():
                        timings[name].append(time_tracking(tracker, clip, first_box, warmup))
                figures = {name: _median_time(values) for name, values in timings.items()}
                for name in trackers:
                    timing = figures[name]
                    rows.append(BenchRow(
                        name, str(device), size, timing.fps, timing.mean_ms,
                        timing.fps / csrt if csrt else None,
                        timing.fps / figures[baseline].fps if baseline else None,
                        precision=precision, auto=precision == auto, p95_ms=timing.p95_ms,
                        ratio_to_backbone=timing.ratio_to_backbone,
                        backbone_ms=timing.backbone_ms, stage_ms=timing.stage_ms))
                del built
    return {'rows': [asdict(row) for row in rows], 'csrt_available': csrt_available(),
            'frames': frames, 'warmup': warmup, 'repeats': repeats, 'baseline': baseline,
            'config_overrides': overrides or {}, 'torch_threads': torch.get_num_threads(),
            'cpu': platform.processor() or platform.machine(),
            'gpu': torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def speed_table(rows: list[dict], baseline: str | None) -> str:
    headers = ['tracker', 'device', 'precision', 'size', 'fps', 'ms/frame', 'p95 ms', 'x CSRT',
               'x backbone']
    if baseline:
        headers.append(f'x {baseline}')
    lines = []
    for row in rows:
        precision = row['precision'] + ('=auto' if row['auto'] else '')
        line = [row['tracker'], row['device'], precision if row['stage_ms'] else '-',
                row['size'], row['fps'], row['ms_per_frame'], row['p95_ms'],
                row['ratio_to_csrt'], row['ratio_to_backbone']]
        lines.append(line + ([row['ratio_to_baseline']] if baseline else []))
    return format_table(headers, lines)


def stage_table(rows: list[dict]) -> str:
    stages = list(STAGES) + ['other']
    lines = [[row['tracker'], row['precision'], row['size'],
              *(row['stage_ms'].get(stage) for stage in stages)]
             for row in rows if row['stage_ms']]
    return format_table(['ms per frame in', 'precision', 'size', *stages], lines)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        import cv2

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    for name in args.precisions or []:
        check_precision(name)
    if args.node:
        return run_node_benchmark(args)
    from siam_tracking_ros.core.registry import list_trackers

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
    if args.targets:
        result = run_target_benchmark(trackers, devices, args.sizes, args.targets, args.frames,
                                      args.warmup, parse_overrides(args.config), args.repeats,
                                      args.precisions)
        tables = [targets_table(result['rows']), targets_stage_table(result['rows'])]
    else:
        result = run_benchmark(trackers, devices, args.sizes, args.frames, args.warmup,
                               args.baseline, parse_overrides(args.config), args.repeats,
                               args.precisions, args.nanotrack)
        tables = [speed_table(result['rows'], args.baseline), stage_table(result['rows'])]
    print('\n\n'.join(tables))
    if args.json:
        write_json(args.json, result)
        print(f'figures written to {args.json}')
    return 0
