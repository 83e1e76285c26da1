"""``siamtrack train``: train a tracker's network (or its add-on modules) on sequences and stills."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from siam_tracking_ros.core.device import PRECISIONS
from siam_tracking_ros.tools.cmd_eval import parse_overrides
from siam_tracking_ros.train.loop import OPTIMIZERS, SCHEDULES, TrainConfig, run_training
from siam_tracking_ros.train.recipes import trainable_trackers
from siam_tracking_ros.train.validation import BEST_CHECKPOINT, ValidationSplit

DESCRIPTION = """Train a tracker with the project's pipeline.

--data takes one or more of: a UAV123-layout folder, a GOT-10k or OTB-style folder of sequences
(img/ + groundtruth.txt), a COCO-format still-image folder (annotations.json + images/), a folder
holding several of these, or synth:N for N generated sequences. The evaluation set (uav_dev) is
refused. Writes last.pth (project checkpoint format with metadata), log.csv (a row per step,
with its seconds) and loss.png to --out; with --validate also best.pth, the epoch that tracked the
held-out sequences best (mean success AUC). A run stopped at any point resumes with --resume
OUT/last.pth from its last checkpoint (every epoch, and every --checkpoint-every steps).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument('--tracker', required=True,
                        help='what to train: ' + ', '.join(trainable_trackers()) + '. '
                             "sa_siam_snet trains SA-Siam's S-Net as a classifier of labelled "
                             'still-image objects; sa_siam then trains its attention and fusion '
                             'on that file (--init), sa_siam_tune the same with S-Net conv4 '
                             "and conv5 learning too; dsiam / dsiam_m train DSiam's fusion maps "
                             'and lambdas on sequence clips (--init a SiamFC file)')
    parser.add_argument('--data', required=True, nargs='+', help='training data (see above)')
    parser.add_argument('--out', required=True, type=Path, help='output folder')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--steps-per-epoch', type=int, default=100)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--lr', type=float, default=None,
                        help="peak learning rate (default: the tracker's recipe)")
    parser.add_argument('--optimizer', choices=OPTIMIZERS, default=None)
    parser.add_argument('--schedule', choices=SCHEDULES, default=None,
                        help='decay after the linear warm-up')
    parser.add_argument('--device', default='auto', help="'auto', 'cpu' or 'cuda[:n]'")
    parser.add_argument('--workers', type=int, default=0, help='data loader processes')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=None,
                        help='CPU threads for torch (default: torch decides)')
    parser.add_argument('--precision', choices=PRECISIONS, default='auto',
                        help='forward-pass autocast: auto (default) is fp16 on CUDA, bf16 on a '
                             'CPU with native bf16, fp32 otherwise; weights stay float32')
    parser.add_argument('--amp', action='store_true',
                        help='bfloat16 autocast on CUDA (older switch; with --precision fp32)')
    parser.add_argument('--resume', type=Path, default=None,
                        help='continue a run from its last.pth (weights, optimiser, step, RNG)')
    parser.add_argument('--checkpoint-every', type=int, default=0, metavar='STEPS',
                        help='also checkpoint every STEPS steps inside an epoch (default: at '
                             "each epoch's end only)")
    parser.add_argument('--validate', type=Path, default=None, metavar='DATASET',
                        help='held-out sequences (a dataset folder) tracked after every epoch '
                             'to choose the checkpoint; never the evaluation set, never inside '
                             '--data')
    parser.add_argument('--validate-sequences', default='', metavar='A,B,...',
                        help='the names in --validate to use (default: all)')
    parser.add_argument('--validate-frames', type=int, default=None, metavar='N',
                        help='track only the first N frames of each validation sequence')
    parser.add_argument('--init', type=Path, default=None,
                        help='start from these weights (required for add-on modules such as '
                             "CLNet's, whose base network stays frozen)")
    parser.add_argument('--synth-cache', type=Path, default=None,
                        help='where synth:N sequences are written (default: OUT/synth)')
    parser.add_argument('--config', nargs='+', metavar='KEY=VALUE',
                        help="tracker config overrides, e.g. --config "
                             "snet_weights=alexnet-owt.pth (SA-Siam's S-Net from torchvision's "
                             "ImageNet AlexNet)")
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    """Bad input raises ValueError (the dispatcher prints it and exits with status 2)."""
    for name in ('resume', 'init'):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            raise ValueError(f'--{name} checkpoint {path} does not exist')
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f'--threads must be at least 1, got {args.threads}')
        torch.set_num_threads(args.threads)
    config = TrainConfig(
        tracker=args.tracker, data=tuple(args.data), out=args.out, epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size, lr=args.lr,
        optimizer=args.optimizer, schedule=args.schedule, device=args.device,
        workers=args.workers, seed=args.seed, resume=args.resume, init=args.init,
        amp=args.amp, precision=args.precision, progress=not args.no_progress,
        synth_cache=args.synth_cache,
        tracker_config=parse_overrides(args.config), checkpoint_every=args.checkpoint_every,
        validation=validation_split(args))
    metadata = run_training(config)
    summary = {'checkpoint': str(args.out / 'last.pth'), 'final_loss': metadata['final_loss'],
               'steps': metadata['steps_done']}
    validated = [entry for entry in metadata['history'] if 'validation' in entry]
    if validated:
        best = max(validated, key=lambda entry: entry['validation']['auc'])
        summary.update(best=str(args.out / BEST_CHECKPOINT), best_epoch=best['epoch'],
                       best_validation_auc=best['validation']['auc'])
    print(json.dumps(summary))
    return 0


def validation_split(args: argparse.Namespace) -> ValidationSplit | None:
    if args.validate is None:
        if args.validate_sequences or args.validate_frames is not None:
            raise ValueError('--validate-sequences and --validate-frames need --validate DATASET')
        return None
    names = tuple(name.strip() for name in args.validate_sequences.split(',') if name.strip())
    return ValidationSplit(args.validate, names, args.validate_frames)
