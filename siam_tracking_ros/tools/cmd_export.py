"""``siamtrack export``: write a tracker's weights in pysot's or siamfc-pytorch's checkpoint layout."""
from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """Write a tracker's weights in a reference implementation's layout.

  pysot   {'state_dict': ...} with pysot's keys, for BGR input (SiamRPN, SiamRPN++; the RPN
          base of DROL-RPN and CLNet: CLNet's predictor is left out)
  siamfc  siamfc-pytorch's plain state dict (backbone.conv1..5), for RGB input (SiamFC; the
          base of DROL-FC)

When the weights expect the other colour order, the first convolution's input channels are
reversed, so the reference computes the same responses on its own images. Loading the file back
(siamtrack eval --weights FILE) gives the same network.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from siam_tracking_ros.core.export import LAYOUTS

    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument('--tracker', required=True, help='registered tracker name')
    parser.add_argument('--weights', type=Path,
                        help='checkpoint to export (default: the weights the package ships)')
    parser.add_argument('--format', required=True, choices=sorted(LAYOUTS),
                        help='reference layout to write')
    parser.add_argument('--out', required=True, type=Path, help='file to write (.pth)')


def run(args: argparse.Namespace) -> int:
    import warnings

    from siam_tracking_ros.core.export import LAYOUTS, export_tracker
    from siam_tracking_ros.core.registry import build_tracker, shipped_weights

    if args.weights is None and shipped_weights(args.tracker) is None:
        raise ValueError(f"no weights ship for '{args.tracker}': give the checkpoint to export "
                         'with --weights')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # a missing shipped file is refused above
        tracker = build_tracker(args.tracker, weights=args.weights, device='cpu')
    exported = export_tracker(tracker, args.format, args.out)
    layout = LAYOUTS[args.format]
    print(f'wrote {exported.path} ({layout.name} layout, {layout.colour_order} input; the '
          f'weights expected {tracker.colour_order})')
    if exported.left_out:
        print(f"left out (no place in the {layout.name} network): "
              f"{', '.join(name + '.*' for name in exported.left_out)}")
    return 0
