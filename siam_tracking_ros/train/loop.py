"""The training loop shared by every recipe: data, optimiser, schedule, logs, checkpoints."""

from __future__ import annotations

import csv
import datetime
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from siam_tracking_ros.core.device import check_precision, precision_dtype, resolve_precision
from siam_tracking_ros.train.checkpointing import (copy_checkpoint, load_training_state,
                                                   save_training_checkpoint,
                                                   training_tracker)
from siam_tracking_ros.train.dataset import EpochSampler, PairDataset
from siam_tracking_ros.train.pairs import PairSampler
from siam_tracking_ros.train.recipes import TrainingRecipe, recipe_for
from siam_tracking_ros.train.sources import load_tracks
from siam_tracking_ros.train.validation import (BEST_CHECKPOINT, ValidationSplit,
                                                best_validation_auc, validate)

OPTIMIZERS = ('sgd', 'adam')
SCHEDULES = ('cosine', 'exponential')
LOG_FILE = 'log.csv'
CURVE_FILE = 'loss.png'
LAST_CHECKPOINT = 'last.pth'


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``lr`` etc. left as None take the recipe's defaults."""

    tracker: str
    data: tuple[str, ...]
    out: Path
    epochs: int = 10
    steps_per_epoch: int = 100
    batch_size: int = 16
    lr: float | None = None
    optimizer: str | None = None
    schedule: str | None = None
    device: str = 'auto'
    workers: int = 0
    seed: int = 0
    resume: Path | None = None
    init: Path | None = None
    amp: bool = False
    # Forward-pass arithmetic (autocast); fp32 trains exactly as before. See autocast_dtype.
    precision: str = 'fp32'
    cache_bytes: int = 1 << 30
    progress: bool = True
    synth_cache: Path | None = None
    # Overrides of the tracker's default config (``siamtrack train --config key=value``).
    tracker_config: dict = field(default_factory=dict)
    # Also write the resume checkpoint every this many steps inside an epoch (0: epoch ends).
    checkpoint_every: int = 0
    # Held-out sequences tracked after every epoch; the best epoch is kept as best.pth.
    validation: ValidationSplit | None = None

    def __post_init__(self):
        check_precision(self.precision)
        if self.epochs < 1 or self.steps_per_epoch < 1 or self.batch_size < 1:
            raise ValueError('epochs, steps_per_epoch and batch_size must all be positive, got '
                             f'{self.epochs}, {self.steps_per_epoch}, {self.batch_size}')
        if not self.data:
            raise ValueError('no training data given (--data PATH ... or synth:N)')
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f'lr must be positive, got {self.lr}')
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer '{self.optimizer}'; use one of {OPTIMIZERS}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule '{self.schedule}'; use one of {SCHEDULES}")
        if self.workers < 0:
            raise ValueError(f'workers must be >= 0, got {self.workers}')
        if self.checkpoint_every < 0:
            raise ValueError(f'checkpoint_every must be >= 0, got {self.checkpoint_every}')


def learning_rate(step: int, total_steps: int, base_lr: float, warmup_steps: int,
                  final_ratio: float, schedule: str) -> float:
    """Linear warm-up from base_lr * final_ratio, then cosine or exponential decay to it."""
    low = base_lr * final_ratio
    if step < warmup_steps:
        return low + (base_lr - low) * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == 'cosine':
        return low + 0.5 * (base_lr - low) * (1.0 + math.cos(math.pi * progress))
    return base_lr * final_ratio ** progress


def parameter_groups(parameters) -> list[dict]:
    """What ``recipe.prepare`` returned as optimiser groups: a list of parameters is one group;
    a list of ``{'params': [...], 'lr_scale': s}`` dicts gives each group ``s`` x the
    scheduled learning rate (1 where absent)."""
    parameters = list(parameters)
    if parameters and all(isinstance(group, dict) for group in parameters):
        return [{**group, 'params': list(group['params']),
                 'lr_scale': float(group.get('lr_scale', 1.0))} for group in parameters]
    if any(isinstance(group, dict) for group in parameters):
        raise TypeError('prepare() returns parameters or parameter groups, not a mixture')
    return [{'params': parameters, 'lr_scale': 1.0}]


def make_optimizer(name: str, groups: list[dict], lr: float, recipe: TrainingRecipe):
    """The optimiser over ``groups`` (from :func:`parameter_groups`)."""
    if name == 'adam':
        return torch.optim.Adam(groups, lr=lr, weight_decay=recipe.optimiser.weight_decay)
    return torch.optim.SGD(groups, lr=lr, momentum=recipe.optimiser.momentum,
                           weight_decay=recipe.optimiser.weight_decay)


class TrainingLog:
    """Per-step CSV log and the loss-curve plot in the output folder."""

    def __init__(self, out: Path, append: bool):
        self.path = out / LOG_FILE
        self.curve_path = out / CURVE_FILE
        self.fields: list[str] | None = None
        if append and self.path.is_file():
            with self.path.open() as handle:
                self.fields = next(csv.reader(handle), None)
        elif self.path.exists():
            self.path.unlink()

    def write(self, row: dict[str, float]) -> None:
        if self.fields is None:
            self.fields = list(row)
            with self.path.open('w', newline='') as handle:
                csv.writer(handle).writerow(self.fields)
        with self.path.open('a', newline='') as handle:
            csv.writer(handle).writerow([f'{row.get(name, float("nan")):.6g}'
                                         for name in self.fields])

    def rows(self) -> list[dict[str, float]]:
        if not self.path.is_file():
            return []
        with self.path.open() as handle:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]

    def plot(self) -> None:
        import matplotlib
        matplotlib.use('Agg')
        from matplotlib import pyplot as plt

        rows = self.rows()
        if not rows:
            return
        steps = np.array([r['step'] for r in rows])
        figure, axis = plt.subplots(figsize=(7, 4))
        for name in rows[0]:
            if name == 'loss' or name.startswith('loss_'):
                values = np.array([r[name] for r in rows])
                window = max(1, len(values) // 50)
                smooth = np.convolve(values, np.ones(window) / window, mode='valid')
                axis.plot(steps[window - 1:], smooth, label=name)
        axis.set_xlabel('step')
        axis.set_ylabel('loss (moving average)')
        axis.set_yscale('log')
        axis.grid(True, alpha=0.3)
        axis.legend()
        figure.tight_layout()
        figure.savefig(self.curve_path, dpi=100)
        plt.close(figure)


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    # Images come as (N, H, W, 3) uint8: the recipes' permute to NCHW is channels_last already.
    return {name: value.to(device, non_blocking=True) for name, value in batch.items()}


@dataclass
class ResumePoint:
    """Where a run resumes: the epoch, the steps of it already done and their losses (a run
    checkpointed mid-epoch resumes at that step), and the finished epochs' history."""

    epoch: int = 0
    step_in_epoch: int = 0
    epoch_losses: tuple[float, ...] = ()
    history: list = field(default_factory=list)

    @classmethod
    def from_state(cls, state: dict, steps_per_epoch: int) -> 'ResumePoint':
        step = state.get('step')
        if step is None:  # written at an epoch's end only
            step = state['epoch'] * steps_per_epoch
        epoch, step_in_epoch = divmod(int(step), steps_per_epoch)
        losses = tuple(state.get('epoch_losses', ())) if step_in_epoch else ()
        return cls(epoch, step_in_epoch, losses, list(state['history']))


def autocast_dtype(precision: str, amp: bool, device: torch.device) -> torch.dtype | None:
    """Autocast dtype of the training forward passes, None for plain float32.

    The weights, gradients and optimiser state stay float32 in every precision. ``amp`` is the
    older switch for bf16 autocast on CUDA; it applies when ``precision`` is fp32.
    """
    if amp and device.type == 'cuda' and check_precision(precision) == 'fp32':
        return torch.bfloat16
    resolved = resolve_precision(precision, device)
    return None if resolved == 'fp32' else precision_dtype(resolved)


def run_training(config: TrainConfig, recipe: TrainingRecipe | None = None) -> dict:
    """Train ``config.tracker`` and return the final metadata (also stored in the checkpoint).

    ``recipe``: the training rules; by default the one registered for ``config.tracker``.
    """
    torch.manual_seed(config.seed)
    recipe = recipe or recipe_for(config.tracker)
    if recipe.needs_init and config.init is None:
        raise ValueError(f'{config.tracker} trains modules on top of a trained base network: '
                         'give the base weights with --init')
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    validation = (config.validation.open(config.data) if config.validation is not None
                  else None)
    tracks = []
    for spec in config.data:
        tracks.extend(load_tracks(spec, config.synth_cache or out / 'synth'))
    sampler = PairSampler(recipe.select_tracks(tracks), recipe.sampling)
    tracker = training_tracker(recipe.tracker_name, config.device, config.init, recipe.load_init,
                               recipe.he_normal_convs, config.tracker_config)
    forward_dtype = autocast_dtype(config.precision, config.amp, tracker.device)
    memory_format = training_memory_format(tracker.device, forward_dtype)
    tracker.model.to(memory_format=memory_format)
    groups = parameter_groups(recipe.prepare(tracker))
    parameters = [parameter for group in groups for parameter in group['params']]
    base_lr = config.lr or recipe.optimiser.lr
    optimizer = make_optimizer(config.optimizer or recipe.optimiser.optimizer, groups,
                               base_lr, recipe)
    schedule = config.schedule or recipe.optimiser.schedule
    progress = ResumePoint()
    if config.resume is not None:
        state = load_training_state(config.resume, tracker, optimizer)
        progress = ResumePoint.from_state(state, config.steps_per_epoch)
        recipe.load_training_state(state['recipe'])
    dataset = PairDataset(sampler, recipe, config.steps_per_epoch, config.batch_size,
                          config.seed, config.cache_bytes)
    log = TrainingLog(out, append=config.resume is not None)
    total_steps = config.epochs * config.steps_per_epoch
    warmup = int(recipe.optimiser.warmup_fraction * total_steps)
    metadata = {
        'tracker': recipe.tracker_name, 'trained': config.tracker, 'data': list(config.data),
        'tracks': sampler.summary(), 'epochs': config.epochs,
        'steps_per_epoch': config.steps_per_epoch, 'batch_size': config.batch_size,
        'lr': base_lr, 'schedule': schedule, 'seed': config.seed,
        'init': str(config.init) if config.init else None, 'recipe': recipe.describe(),
        'tracker_config': asdict(tracker.config),
        'precision': str(forward_dtype or torch.float32).replace('torch.', ''),
        'memory_format': 'channels_last' if memory_format is torch.channels_last else 'nchw',
    }
    if validation is not None:
        metadata['validation_split'] = {'folder': str(config.validation.folder),
                                        'sequences': validation.names,
                                        'max_frames': config.validation.max_frames}
    scaler = torch.amp.GradScaler(enabled=forward_dtype is torch.float16)
    epoch_sampler = EpochSampler(dataset)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=epoch_sampler,
                        num_workers=config.workers, drop_last=True,
                        pin_memory=tracker.device.type == 'cuda',
                        persistent_workers=config.workers > 0)
    history = progress.history

    def save(epoch_losses: list[float], steps_done: int) -> None:
        epochs_done = steps_done // config.steps_per_epoch
        metadata.update({'epochs_done': epochs_done, 'steps_done': steps_done,
                         'history': history,
                         'final_loss': history[-1]['mean_loss'] if history else None,
                         'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
                             timespec='seconds')})
        save_training_checkpoint(out / LAST_CHECKPOINT, tracker, metadata, optimizer,
                                 epochs_done, history, recipe.training_state(),
                                 step=steps_done, epoch_losses=epoch_losses)

    for epoch in range(progress.epoch, config.epochs):
        skip = progress.step_in_epoch if epoch == progress.epoch else 0
        losses = list(progress.epoch_losses) if skip else []
        epoch_sampler.set_epoch(epoch, skip_items=skip * config.batch_size)
        started = last = time.monotonic()
        bar = tqdm(loader, desc=f'epoch {epoch + 1}/{config.epochs}', disable=not config.progress,
                   leave=False, initial=skip, total=config.steps_per_epoch)
        for step_in_epoch, batch in enumerate(bar, start=skip):
            step = epoch * config.steps_per_epoch + step_in_epoch
            lr = learning_rate(step, total_steps, base_lr, warmup,
                               recipe.optimiser.final_lr_ratio, schedule)
            loss, parts = _training_step(recipe, tracker, optimizer, scaler, parameters, lr,
                                         _to_device(batch, tracker.device),
                                         forward_dtype, step)
            losses.append(loss)
            now = time.monotonic()
            log.write({'step': step, 'epoch': epoch, 'lr': lr, 'loss': loss,
                       **{f'loss_{k}': v for k, v in parts.items()}, 'seconds': now - last})
            last = now
            bar.set_postfix(loss=f'{np.mean(losses[-20:]):.4f}', lr=f'{lr:.2e}')
            done_in_epoch = step_in_epoch + 1
            if (config.checkpoint_every and (step + 1) % config.checkpoint_every == 0
                    and done_in_epoch < config.steps_per_epoch):
                save(losses, step + 1)
        seconds = time.monotonic() - started
        entry = {'epoch': epoch + 1, 'mean_loss': float(np.mean(losses)),
                 'seconds': round(seconds, 1),
                 'steps_per_s': round((config.steps_per_epoch - skip) / max(seconds, 1e-9), 3)}
        history.append(entry)
        save([], (epoch + 1) * config.steps_per_epoch)
        if validation is not None:
            # Tracked with the weights just written; the record goes into the checkpoint, which
            # becomes best.pth when no earlier epoch scored higher.
            entry['validation'] = validate(out / LAST_CHECKPOINT, recipe.tracker_name,
                                           validation, tracker.device, config.tracker_config)
            entry['best'] = entry['validation']['auc'] > best_validation_auc(history[:-1])
            save([], (epoch + 1) * config.steps_per_epoch)
            if entry['best']:
                copy_checkpoint(out / LAST_CHECKPOINT, out / BEST_CHECKPOINT)
        print(json.dumps(entry), flush=True)
        recipe.after_checkpoint(out / LAST_CHECKPOINT)
        log.plot()
    return metadata


def training_memory_format(device: torch.device,
                           forward_dtype: torch.dtype | None) -> torch.memory_format:
    """channels_last for reduced-precision autocast on the CPU, the layout oneDNN's bf16
    convolutions are fast in; the default layout otherwise (in fp32 on an AVX2 CPU a SiamRPN
    step of 8 pairs took 4.7 s in channels_last against 4.0 s in NCHW)."""
    if device.type == 'cpu' and forward_dtype is not None:
        return torch.channels_last
    return torch.contiguous_format


def _training_step(recipe, tracker, optimizer, scaler, parameters, lr: float, batch: dict,
                   forward_dtype: torch.dtype | None, step: int) -> tuple[float, dict]:
    """One optimiser step (autocast forward, fp32 master weights and gradients)."""
    for group in optimizer.param_groups:
        group['lr'] = lr * group.get('lr_scale', 1.0)
    with torch.autocast(tracker.device.type, dtype=forward_dtype or torch.bfloat16,
                        enabled=forward_dtype is not None):
        loss, parts = recipe.loss(tracker, batch)
    if not torch.isfinite(loss):
        raise FloatingPointError(f'loss became {float(loss)} at step {step}; lower --lr')
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(parameters, recipe.optimiser.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach()), parts
