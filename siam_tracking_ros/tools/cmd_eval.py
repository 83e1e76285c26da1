"""``siamtrack eval``: one-pass evaluation of registered trackers on a dataset folder."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import yaml

from siam_tracking_ros.core.device import PRECISIONS
from siam_tracking_ros.eval import ope
from siam_tracking_ros.eval.baselines import CSRT_NAME, OpenCVCsrt
from siam_tracking_ros.eval.conventions import CONVENTIONS, DEFAULT_CONVENTION
from siam_tracking_ros.eval.datasets import open_dataset
from siam_tracking_ros.tools.cli import int_at_least, names_list

DESCRIPTION = """One-pass evaluation (OTB / UAV123 protocol) of one or more trackers.

The dataset is a UAV123-layout folder (data_seq/, anno/) or a folder of <seq>/groundtruth.txt
sequences. Writes <out>/<tracker>/<seq>.txt (1-based x,y,w,h per frame), results.json,
results.csv, success.png, precision.png and norm_precision.png, and prints a summary table.

A multi-target sequence (UAV123 layout: anno/<seq>/<target>.txt, one file per target, beside
single-target anno/<seq>.txt files) is evaluated target by target as <seq>/<target>: each target
tracked from the first frame by a tracker of its own (what core.multi_target gives it box for
box), written to <out>/<tracker>/<seq>/<target>.txt. --sequences <seq> selects all its targets,
<seq>/<target> one.

--convention pysot reads the ground truth and writes the boxes as pysot's test script does (the
tracker starts on the file's 1-based box plus half a pixel; lines are x = cx - w/2), so that the
files compare with published pysot result files; the default, package, starts on the annotated
pixels (x - 1) and writes 1-based boxes.

Each sequence's boxes and <seq>.json record (scores, timing, and the tracker, weights and config
that made them) are written as soon as it finishes: after an interruption, --resume runs only the
sequences not done yet. --workers N tracks N sequences at a time in separate processes, the
processor's cores shared out between them.
"""


def parse_overrides(items: list[str] | None) -> dict:
    """``key=value`` strings -> dict; values typed as YAML scalars (1, 0.5, true, [1, 2], text)."""
    overrides = {}
    for item in items or []:
        key, separator, value = item.partition('=')
        if not separator or not key.strip():
            raise ValueError(f'--config expects key=value, got {item!r}')
        try:
            overrides[key.strip()] = yaml.safe_load(value) if value.strip() else ''
        except yaml.YAMLError:
            raise ValueError(f'--config {item!r}: cannot parse the value {value!r}') from None
    return overrides


def weights_by_tracker(trackers: list[str], weights: list[str] | None) -> dict[str, Path | None]:
    """Pair ``--weights`` files with trackers: one file per tracker, in the same order."""
    if not weights:
        return {name: None for name in trackers}
    if len(weights) != len(trackers):
        raise ValueError(f'--weights lists {len(weights)} file(s) for {len(trackers)} tracker(s); '
                         'give one file per tracker, in the same order')
    return {name: Path(path) for name, path in zip(trackers, weights)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument('--dataset', required=True, type=Path, help='dataset folder')
    parser.add_argument('--tracker', required=True, type=names_list,
                        help=f'registered tracker name(s), comma-separated; {CSRT_NAME} runs '
                             "OpenCV's CSRT for comparison")
    parser.add_argument('--weights', type=names_list,
                        help='checkpoint file(s), comma-separated, one per tracker '
                             '(default: the weights the package ships)')
    parser.add_argument('--device', default='auto', help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument('--precision', choices=PRECISIONS, default='auto',
                        help='network arithmetic: auto (default) is fp16 on CUDA, bf16 on a CPU '
                             'with native bf16, fp32 otherwise; fp32 matches the references')
    parser.add_argument('--sequences', type=names_list,
                        help='only these sequences, comma-separated (default: all)')
    parser.add_argument('--config', nargs='+', metavar='KEY=VALUE',
                        help="tracker config overrides applied to every tracker, e.g. "
                             "--config window_influence=0.3 use_online=false")
    parser.add_argument('--max-frames', type=int_at_least(2),
                        help='evaluate only the first N frames of each sequence')
    parser.add_argument('--convention', choices=sorted(CONVENTIONS), default=DEFAULT_CONVENTION,
                        help='how ground-truth boxes are read and result boxes written '
                             f'(default {DEFAULT_CONVENTION}; pysot: as pysot\'s test script)')
    parser.add_argument('--out', required=True, type=Path, help='output folder')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    parser.add_argument('--resume', action='store_true',
                        help='keep the sequences already evaluated in --out (refused when they '
                             'were made with another tracker, weights, config or device)')
    parser.add_argument('--workers', type=int_at_least(1), default=1,
                        help='sequences evaluated at once, in separate processes (default 1); '
                             'speeds then reflect the shared processor')


@dataclasses.dataclass(frozen=True)
class TrackerBuilder:
    """``build(name) -> tracker`` with the command's weights, device and overrides; a plain
    object so that --workers processes can be sent it."""

    weights: dict
    device: str
    overrides: dict

    def __call__(self, name: str):
        from siam_tracking_ros.core.registry import build_tracker
        if name == CSRT_NAME:
            return OpenCVCsrt()
        return build_tracker(name, weights=self.weights[name], device=self.device,
                             **self.overrides)

    def weights_file(self, name: str) -> Path | None:
        from siam_tracking_ros.core.registry import shipped_weights
        if name == CSRT_NAME:
            return None
        return self.weights[name] or shipped_weights(name)

    def identity(self, name: str, max_frames: int | None) -> dict:
        """What the tracker's boxes depend on, recorded with each sequence for --resume."""
        from siam_tracking_ros.core.registry import default_config, replace_config
        path = self.weights_file(name)
        config = ({} if name == CSRT_NAME else
                  dataclasses.asdict(replace_config(default_config(name), **self.overrides)))
        return {'weights': str(path) if path else None,
                'weights_sha256': ope.file_digest(path) if path else None,
                'config': config, 'device': self.device, 'max_frames': max_frames}


def tracker_builder(names: list[str], weights: dict[str, Path | None], device,
                    overrides: dict, precision: str = 'fp32') -> TrackerBuilder:
    """Check names, weights and overrides up front, then return ``build(name) -> tracker``.

    ``opencv_csrt`` (OpenCV's CSRT, for comparison) takes no weights or overrides.
    ``precision`` applies to the other trackers unless ``overrides`` sets it.
    """
    overrides = {'precision': precision, **overrides}
    from siam_tracking_ros.core.registry import default_config, replace_config

    for name in names:  # unknown names and fields fail before any tracking starts
        if name == CSRT_NAME:
            if weights[name] is not None or set(overrides) != {'precision'}:
                raise ValueError(f'{CSRT_NAME} takes neither --weights nor --config')
            OpenCVCsrt()  # raises if CSRT is missing from this OpenCV build
        else:
            replace_config(default_config(name), **overrides)
    return TrackerBuilder(weights, str(device), overrides)


def run(args: argparse.Namespace) -> int:
    from siam_tracking_ros.core.device import resolve_device

    device = resolve_device(args.device)
    overrides = parse_overrides(args.config)
    weights = weights_by_tracker(args.tracker, args.weights)
    build = tracker_builder(args.tracker, weights, device, overrides, args.precision)
    dataset = open_dataset(args.dataset, args.sequences).truncated(args.max_frames)
    settings = {'weights': {name: str(path) if path else None for name, path in weights.items()},
                'config_overrides': overrides, 'precision': args.precision, 'max_frames': args.max_frames,
                'sequences': dataset.names, 'convention': args.convention}
    identities = {name: {**build.identity(name, args.max_frames), 'convention': args.convention}
                  for name in args.tracker}
    report = ope.evaluate_trackers(args.tracker, build, dataset, args.out, device,
                                   progress=not args.quiet, settings=settings,
                                   identities=identities, resume=args.resume,
                                   workers=args.workers, convention=args.convention)
    print(ope.summary_table(report))
    print(f'results: {args.out / ope.RESULTS_JSON}, {args.out / ope.RESULTS_CSV}, plots and '
          f'per-sequence boxes in {args.out}')
    return 0
