"""Checkpoint loading (pysot, siamfc-pytorch, this project's format) and saving.

Formats recognised by ``read_checkpoint``:

* **project**: ``{'format': 'siam_tracking_ros', 'version', 'tracker', 'colour_order', 'config',
  'training', 'state_dict'}``;
* **pysot**: ``{'state_dict': ..., ...}``, keys possibly prefixed ``module.`` (DataParallel);
  images in BGR;
* **plain state dict** (siamfc-pytorch ``siamfc_alexnet_e50.pth``): tensors only; RGB when the
  keys are siamfc-pytorch's, BGR otherwise (pysot weights saved bare).

Everything is read with ``torch.load(..., weights_only=True)`` and loaded strictly, with one
exception pysot's loader also makes: a file without BatchNorm's ``num_batches_tracked`` counters
(older PyTorch saved none) loads, the counters being unused at inference; the load message says so.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

FORMAT_NAME = 'siam_tracking_ros'
FORMAT_VERSION = 1
DATA_PARALLEL_PREFIX = 'module.'
KEYS_SHOWN = 5
# BatchNorm's step counter: only read in training with momentum=None, never at inference.
BATCH_COUNTER_SUFFIX = 'num_batches_tracked'

LOGGER = logging.getLogger(__name__)

# Keys that only one reference network has: how a file tells which tracker it is for.
KEY_SIGNATURES = (
    ('siamrpn_r50_l234', ('backbone.layer4.0.conv1.weight', 'neck.downsample4.downsample.0.weight',
                          'rpn_head.rpn4.cls.head.3.weight', 'rpn_head.cls_weight')),
    ('siammask_r50_l3', ('mask_head.', 'backbone.layer3.0.conv1.weight')),
    ('siamrpn_alexnet', ('backbone.features.0.weight', 'rpn_head.cls.head.3.weight')),
    ('siamfc_alexnet', ('backbone.conv1.0.weight', 'backbone.conv5.0.weight')),
)


def identify_checkpoint(keys) -> str | None:
    """Name of the reference tracker whose key signature ``keys`` carries, or None."""
    keys = list(keys)

    def has(signature_key: str) -> bool:
        if signature_key.endswith('.'):
            return any(key.startswith(signature_key) for key in keys)
        return signature_key in keys

    for name, signature in KEY_SIGNATURES:
        if all(has(key) for key in signature):
            return name
    return None


def _strip_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    if state_dict and all(key.startswith(DATA_PARALLEL_PREFIX) for key in state_dict):
        return {key[len(DATA_PARALLEL_PREFIX):]: value for key, value in state_dict.items()}
    return dict(state_dict)


def _check_tensors(state_dict: Mapping[str, Any], path) -> None:
    not_tensors = [key for key, value in state_dict.items() if not isinstance(value, torch.Tensor)]
    if not state_dict or not_tensors:
        raise ValueError(f"'{path}' is not a checkpoint this project reads: expected a state dict "
                         f'of tensors, got {len(state_dict)} entries of which {len(not_tensors)} '
                         f'are not tensors (first: {not_tensors[:KEYS_SHOWN]})')


def read_checkpoint(path, device: str | torch.device = 'cpu') -> tuple[dict, dict]:
    """Read a checkpoint file; returns ``(state_dict, metadata)``.

    ``metadata`` always has ``source_format`` (``'siam_tracking_ros' | 'pysot' | 'plain'``),
    ``colour_order`` and ``tracker`` (the recorded or key-signature name, or None).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint '{path}' does not exist")
    try:
        raw = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # unpickling refused or not a torch file
        raise ValueError(f"cannot read checkpoint '{path}' with weights_only=True: {error}") from error
    if not isinstance(raw, dict):
        raise ValueError(f"checkpoint '{path}' holds a {type(raw).__name__}, not a dict")
    if raw.get('format') == FORMAT_NAME:
        state_dict = dict(raw['state_dict'])
        metadata = {key: value for key, value in raw.items() if key != 'state_dict'}
        metadata['source_format'] = FORMAT_NAME
    elif 'state_dict' in raw:
        state_dict = _strip_prefix(raw['state_dict'])
        metadata = {'source_format': 'pysot', 'colour_order': 'BGR',
                    'tracker': identify_checkpoint(state_dict)}
    else:
        state_dict = _strip_prefix(raw)
        tracker = identify_checkpoint(state_dict)
        metadata = {'source_format': 'plain', 'tracker': tracker,
                    'colour_order': 'RGB' if tracker == 'siamfc_alexnet' else 'BGR'}
    _check_tensors(state_dict, path)
    return state_dict, metadata


def _first(keys) -> str:
    keys = sorted(keys)
    shown = ', '.join(keys[:KEYS_SHOWN])
    return f'{len(keys)} ({shown}{", ..." if len(keys) > KEYS_SHOWN else ""})'


def _is_batch_counter(key: str) -> bool:
    return key.rsplit('.', 1)[-1] == BATCH_COUNTER_SUFFIX


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                           source: str = 'state dict', expected_tracker: str | None = None
                           ) -> list[str]:
    """Load ``state_dict`` into ``model``; any missing, unexpected or mis-shaped key raises a
    ValueError naming the keys and the tracker the file appears to be for.

    A file with no BatchNorm ``num_batches_tracked`` counter at all is the exception: the model
    keeps its own. Returns those keys (sorted; empty when the file has counters).
    """
    own = model.state_dict()
    counters_absent = [] if any(_is_batch_counter(key) for key in state_dict) else sorted(
        key for key in own if _is_batch_counter(key))
    state_dict = {**{key: own[key] for key in counters_absent}, **state_dict}
    missing = set(own) - set(state_dict)
    unexpected = set(state_dict) - set(own)
    mismatched = {key for key in set(own) & set(state_dict)
                  if tuple(own[key].shape) != tuple(state_dict[key].shape)}
    if missing or unexpected or mismatched:
        seems = identify_checkpoint(state_dict)
        problems = [f'{label} keys: {_first(keys)}' for label, keys in
                    (('missing', missing), ('unexpected', unexpected),
                     ('shape-mismatched', mismatched)) if keys]
        raise ValueError(
            f"{source} does not fit the {expected_tracker or type(model).__name__} network: "
            + '; '.join(problems)
            + f"; the file looks like a {seems or 'unknown'} checkpoint")
    model.load_state_dict(state_dict, strict=True)
    return counters_absent


def load_checkpoint(path, model: nn.Module, device: str | torch.device = 'cpu',
                    expected_tracker: str | None = None) -> dict:
    """Read ``path`` and load it strictly into ``model``; returns the metadata.

    The metadata gains ``batch_counters_absent`` (the ``num_batches_tracked`` keys the file
    lacked) and ``load_message``, a one-line account of the load, also logged at INFO level."""
    state_dict, metadata = read_checkpoint(path, device)
    absent = load_state_dict_strict(model, state_dict, f"checkpoint '{path}'", expected_tracker)
    metadata['batch_counters_absent'] = absent
    metadata['load_message'] = load_message(path, metadata, len(state_dict), absent)
    LOGGER.info(metadata['load_message'])
    return metadata


def load_message(path, metadata: Mapping[str, Any], tensors: int, counters_absent) -> str:
    """``loaded checkpoint 'p' (pysot format, BGR, siamrpn_alexnet): N tensors[; ...]``."""
    message = (f"loaded checkpoint '{path}' ({metadata.get('source_format')} format, "
               f"{metadata.get('colour_order')}, {metadata.get('tracker') or 'unidentified'}): "
               f'{tensors} tensors')
    if counters_absent:
        message += (f'; the file has no BatchNorm num_batches_tracked counters '
                    f'({len(counters_absent)} absent, unused at inference: the network keeps '
                    'its own)')
    return message


def save_checkpoint(path, tracker_name: str, model: nn.Module, config, training_meta: dict,
                    colour_order: str = 'BGR') -> Path:
    """Write the project format: weights on CPU plus tracker name, config, training metadata.

    ``config`` is a config dataclass or a dict; ``training_meta`` a dict of plain values
    (data used, epochs, ...). ``colour_order`` is the colour order the weights expect.
    """
    if colour_order not in ('BGR', 'RGB'):
        raise ValueError(f"colour_order must be 'BGR' or 'RGB', got '{colour_order}'")
    config_dict = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    payload = {
        'format': FORMAT_NAME,
        'version': FORMAT_VERSION,
        'tracker': tracker_name,
        'colour_order': colour_order,
        'config': config_dict,
        'training': dict(training_meta),
        # contiguous: a model trained in channels_last is stored in the default layout.
        'state_dict': {key: value.detach().cpu().contiguous()
                       for key, value in model.state_dict().items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path
