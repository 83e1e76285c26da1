"""``siamtrack parity``: the package's tracker beside a reference implementation's, frame by frame."""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from siam_tracking_ros.tools.cli import int_at_least, names_list

DESCRIPTION = """Run a reference tracker (pysot or siamfc-pytorch, from a checkout outside this
package) and the package's tracker side by side on dataset sequences, with the same weights:

  package    the package's weights (the shipped file, or a seeded fresh network where none
             ships), exported to the reference's layout and loaded by the reference
  reference  seeded random weights made by the reference's own network, loaded unchanged by
             the package (BatchNorm statistics set on crops of the sequences' first frames,
             so that a fresh ResNet-50's outputs stay finite)

Per frame it reports the free-run deviation (both track on their own), the lockstep deviation
(a second package tracker starts each frame from the reference's state) and the reference's
relative margin between its two best candidates. It passes when lockstep stays under
0.01 px on every frame and the free run under 0.5 px, or parts only at a near tie (margin under
1e-4). pysot needs yacs importable (e.g. PYTHONPATH); siamfc-pytorch's got10k base class is
provided when got10k is not installed. The reference runs on the CPU.
"""
WEIGHT_KINDS = ('package', 'reference')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument('--tracker', required=True, help='registered tracker name')
    parser.add_argument('--reference-path', required=True, type=Path,
                        help='checkout of pysot or siamfc-pytorch (the folder holding pysot/ or '
                             'siamfc/)')
    parser.add_argument('--reference', choices=('pysot', 'siamfc'),
                        help='which reference the checkout is (default: from the tracker)')
    parser.add_argument('--reference-config', type=Path,
                        help="pysot experiment config.yaml (default: the tracker's experiment in "
                             'the checkout)')
    parser.add_argument('--dataset', required=True, type=Path, help='dataset folder')
    parser.add_argument('--sequences', type=names_list, help='sequences, comma-separated '
                        '(default: all)')
    parser.add_argument('--frames', type=int_at_least(2), default=100,
                        help='first N frames of each sequence (default 100)')
    parser.add_argument('--weights', type=names_list, default=list(WEIGHT_KINDS),
                        help="'package', 'reference' or both, comma-separated (default both)")
    parser.add_argument('--seed', type=int, default=0, help='seed of the random weights')
    parser.add_argument('--config', nargs='+', metavar='KEY=VALUE',
                        help="the package tracker's config overrides, to match the reference's "
                             'experiment config (e.g. short_term_drift=true)')
    parser.add_argument('--out', type=Path,
                        help='folder for per-frame CSVs and summary.json (default: print only)')
    parser.add_argument('--per-frame', action='store_true', help='print every frame')


def run(args: argparse.Namespace) -> int:
    from siam_tracking_ros.eval import parity
    from siam_tracking_ros.eval.datasets import open_dataset
    from siam_tracking_ros.eval.report import write_csv
    from siam_tracking_ros.tools.cmd_eval import parse_overrides

    unknown = sorted(set(args.weights) - set(WEIGHT_KINDS))
    if unknown:
        raise ValueError(f'--weights: unknown kind(s) {unknown}; use {", ".join(WEIGHT_KINDS)}')
    spec = parity.reference_spec(args.tracker, args.reference_path, args.reference,
                                 args.reference_config)
    overrides = parse_overrides(args.config)
    dataset = open_dataset(args.dataset, args.sequences)
    summaries, all_passed = [], True
    with tempfile.TemporaryDirectory(prefix='siamtrack-parity-') as scratch:
        work_dir = Path(scratch)
        for kind in args.weights:
            weights = (parity.package_weights(args.tracker, spec.kind, work_dir, args.seed)
                       if kind == 'package' else
                       parity.reference_weights(spec, args.tracker, work_dir, args.seed,
                                                parity.first_frames(dataset)))
            for sequence in dataset:
                rows = parity.compare_on_sequence(args.tracker, spec, weights, sequence,
                                                  args.frames, overrides=overrides)
                summary = parity.summarise(rows)
                all_passed &= summary.passed
                if args.per_frame:
                    for row in rows:
                        print(f'{kind:9} {sequence.name} frame {row.frame:4d}: free '
                              f'{row.free_px:.3g} px, lockstep {row.lockstep_px:.3g} px, '
                              f'margin {row.margin:.3g}')
                print(f'{args.tracker} / {kind} weights / {sequence.name}: {summary.describe()}')
                summaries.append({'tracker': args.tracker, 'weights': kind,
                                  'sequence': sequence.name, **summary.__dict__})
                if args.out:
                    write_csv(args.out / f'{args.tracker}_{kind}_{sequence.name}.csv',
                              ('frame', 'free_px', 'lockstep_px', 'margin'),
                              [list(row.values()) for row in parity.rows_as_dicts(rows)])
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f'{args.tracker}_summary.json').write_text(json.dumps(summaries, indent=1))
    return 0 if all_passed else 1
