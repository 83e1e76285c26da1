"""Building the tracker to train, and its checkpoints (the core's project format) during training.

The weights go through ``core.checkpoints`` (project format with metadata). What only training
needs to resume (the weights again, optimiser state, steps done, loss history, RNG state) goes
to a sidecar file next to it, ``<name>.state.pth``, so that the checkpoint itself stays a plain
tracker weights file.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from siam_tracking_ros.core.checkpoints import (load_state_dict_strict, read_checkpoint,
                                                save_checkpoint)
from siam_tracking_ros.core.registry import build_untrained
from siam_tracking_ros.eval.ope import replace_atomically

STATE_SUFFIX = '.state.pth'


def reset_parameters(model: nn.Module, he_normal_convs: bool = False) -> None:
    """Fresh weights for training from scratch: every layer's own default initialisation (BN
    running statistics cleared too), or He-normal convs (fan-out, siamfc-pytorch's choice)."""
    for module in model.modules():
        if he_normal_convs and isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif hasattr(module, 'reset_parameters'):
            module.reset_parameters()


def load_initial_weights(model: nn.Module, path: Path, new_prefixes: tuple[str, ...] = ()) -> dict:
    """Load ``path`` strictly, except that parameters under ``new_prefixes`` (modules the
    training adds on top of a base network, e.g. CLNet's ``clnet.``) may be absent from it."""
    state_dict, metadata = read_checkpoint(path)
    own = model.state_dict()
    for key, value in own.items():
        if key.startswith(new_prefixes) and key not in state_dict:
            state_dict[key] = value
    load_state_dict_strict(model, state_dict, f"initial weights '{path}'")
    return metadata


def training_tracker(name: str, device: str, init: Path | None, load_init=None,
                     he_normal_convs: bool = False, config_overrides: dict | None = None):
    """The registered tracker ``name`` with fresh weights, or with ``init``'s weights.

    ``load_init(tracker, path) -> metadata`` fits ``init`` into the network (a recipe's
    ``load_init``); by default the file must match the whole network. ``config_overrides``
    change the tracker's default config (unknown fields raise ValueError).
    """
    tracker = build_untrained(name, device=device, **(config_overrides or {}))
    model = tracker.model.float()
    reset_parameters(model, he_normal_convs)
    if init is not None:
        loader = load_init or (lambda target, path: load_initial_weights(target.model, path))
        metadata = loader(tracker, Path(init))
        tracker.model.float()
        tracker.colour_order = metadata.get('colour_order') or tracker.default_colour_order
    return tracker


def state_path(checkpoint: Path) -> Path:
    return Path(checkpoint).with_suffix(STATE_SUFFIX)


def save_training_checkpoint(path: Path, tracker, metadata: dict, optimizer: torch.optim.Optimizer,
                             epoch: int, history: list[dict], recipe_state: dict | None = None,
                             step: int | None = None,
                             epoch_losses: list[float] | tuple = ()) -> Path:
    """Write the weights (project format, with ``metadata`` as its training record) and the
    resume state beside them: the weights again, optimiser, epochs done, history, the recipe's
    training-only modules, the steps done (``step``; mid-epoch when not a multiple of the
    epoch's steps) with the losses of that epoch so far, and torch's RNG state.

    Each file is written whole under a temporary name, then renamed over the old one; the
    state file goes first and holds the weights, so a run killed at any point resumes from a
    consistent step.
    """
    path = Path(path)
    replace_atomically(state_path(path), lambda target: torch.save({
        'model': {key: value.detach().cpu().contiguous()
                  for key, value in tracker.model.state_dict().items()},
        'optimizer': optimizer.state_dict(), 'epoch': epoch, 'history': history,
        'recipe': recipe_state or {}, 'step': step, 'epoch_losses': list(epoch_losses),
        'torch_rng': torch.get_rng_state()}, target))
    replace_atomically(path, lambda target: save_checkpoint(
        target, tracker.name, tracker.model, tracker.config, metadata,
        colour_order=tracker.colour_order))
    return path


def copy_checkpoint(source: Path, target: Path) -> None:
    """Copy a training checkpoint and its resume state (each replaced whole)."""
    for source_file, target_file in ((state_path(source), state_path(target)),
                                     (Path(source), Path(target))):
        if source_file.is_file():
            replace_atomically(target_file, lambda partial: shutil.copyfile(source_file, partial))


def load_training_state(path: Path, tracker, optimizer: torch.optim.Optimizer) -> dict:
    """Restore weights, optimiser and torch's RNG from a run's checkpoint; returns the epochs
    and steps done, the losses of a partly done epoch and the history."""
    state_file = state_path(path)
    if not state_file.is_file():
        raise ValueError(f"cannot resume from '{path}': its training state '{state_file}' is "
                         'missing (use --init to start a new run from these weights)')
    state = torch.load(state_file, map_location=tracker.device, weights_only=True)
    if 'model' in state:
        state_dict = state['model']
    else:  # written before the state held the weights
        state_dict, _ = read_checkpoint(path, tracker.device)
    load_state_dict_strict(tracker.model, state_dict, f"checkpoint '{path}'", tracker.name)
    optimizer.load_state_dict(state['optimizer'])
    if 'torch_rng' in state:
        torch.set_rng_state(state['torch_rng'].cpu())
    return {'epoch': int(state['epoch']), 'history': list(state['history']),
            'recipe': dict(state.get('recipe', {})), 'step': state.get('step'),
            'epoch_losses': list(state.get('epoch_losses', []))}


def export_weights(checkpoint: Path, out: Path, half: bool = True,
                   evaluations: Mapping[str, Mapping[str, float]] | None = None) -> Path:
    """Copy a training checkpoint to a shippable weights file (fp16 storage by default; loading
    casts back to the model's dtype). The metadata is kept.

    ``evaluations``: the scores that justified shipping the file, by evaluation set (e.g.
    ``{'validation_split': {'auc': ..., 'precision_20': ...}, 'uav_dev': {...}}``), recorded in
    its training record beside the command's settings.
    """
    state_dict, metadata = read_checkpoint(checkpoint)
    if half:
        state_dict = {key: value.half() if value.is_floating_point() else value
                      for key, value in state_dict.items()}
    training = dict(metadata.get('training', {}))
    if evaluations is not None:
        training['evaluations'] = {name: {key: float(value) for key, value in scores.items()}
                                   for name, scores in evaluations.items()}
    holder = _StateHolder(state_dict)
    return save_checkpoint(out, metadata['tracker'], holder, metadata.get('config', {}),
                           training, metadata.get('colour_order', 'BGR'))


class _StateHolder(nn.Module):
    """A module whose ``state_dict`` is a given mapping (for re-saving a read checkpoint)."""

    def __init__(self, state_dict: dict[str, torch.Tensor]):
        super().__init__()
        self._held = copy.copy(state_dict)

    def state_dict(self, *args, **kwargs):  # noqa: D102 - same contract as nn.Module's
        return dict(self._held)
