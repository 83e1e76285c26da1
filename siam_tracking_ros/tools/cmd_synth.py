"""``siamtrack synth``: write deterministic synthetic UAV-like sequences in UAV123 layout."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from siam_tracking_ros.eval.synth import SynthConfig, write_uav123_dataset
from siam_tracking_ros.tools.cli import frame_size, int_at_least

DESCRIPTION = """Generate synthetic aerial tracking sequences (data_seq/<seq>/%06d.jpg and
anno/<seq>.txt, 1-based x,y,w,h, NaN rows where the target is out of view or hidden;
with --targets N > 1, anno/<seq>/target.txt and anno/<seq>/object<k>.txt, one per target).
The same --seed always writes the same files. --textures takes ground textures from real
images (e.g. ../shared/train/stills); never point it at an evaluation set.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument('--out', required=True, type=Path, help='output dataset folder')
    parser.add_argument('--sequences', required=True, type=int_at_least(1),
                        help='number of sequences')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    parser.add_argument('--frames', type=int_at_least(2), default=SynthConfig.frames,
                        help=f'frames per sequence (default {SynthConfig.frames})')
    parser.add_argument('--size', type=frame_size,
                        default=(SynthConfig.width, SynthConfig.height),
                        help=f'frame size WxH (default {SynthConfig.width}x{SynthConfig.height})')
    parser.add_argument('--targets', type=int_at_least(1), default=1,
                        help='targets per sequence (default 1); more than 1 makes the distractors '
                             'in view at the first frame targets too, up to this many in all, '
                             'written as anno/<seq>/<target>.txt')
    parser.add_argument('--textures', type=Path,
                        help='folder of real images to texture the ground with')


def run(args: argparse.Namespace) -> int:
    width, height = args.size
    config = SynthConfig(frames=args.frames, width=width, height=height)
    start = time.perf_counter()
    names = write_uav123_dataset(args.out, args.sequences, seed=args.seed, config=config,
                                 texture_dir=args.textures, targets=args.targets)
    print(f'wrote {len(names)} sequences of {args.frames} frames ({width}x{height}) to {args.out} '
          f'in {time.perf_counter() - start:.1f} s')
    return 0
