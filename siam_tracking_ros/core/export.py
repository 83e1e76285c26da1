"""Export a tracker's weights in a reference implementation's checkpoint layout.

The inverse of ``checkpoints.read_checkpoint`` for the two reference layouts:

* ``pysot``: ``{'state_dict': {...}}`` with pysot's key names (the network keys of the SiamRPN
  family are pysot's already), weights for BGR input;
* ``siamfc``: a plain state dict with siamfc-pytorch's ``backbone.conv{1..5}`` keys, weights for
  RGB input.

Reading an exported file back gives the same tensors and the format's colour order; when the
tracker's weights expect the other colour order, the input channels of the first convolution are
reversed on export, so the exported network computes the same function on the reference's images.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from siam_tracking_ros.core.checkpoints import identify_checkpoint

COLOUR_ORDERS = ('BGR', 'RGB')


@dataclass(frozen=True)
class ReferenceLayout:
    """A reference implementation's checkpoint layout."""
    name: str
    colour_order: str
    trackers: tuple[str, ...]  # key signatures (checkpoints.KEY_SIGNATURES) it holds
    modules: tuple[str, ...]  # top-level modules of the reference network
    wrapped: bool  # weights under 'state_dict' (pysot) or the bare state dict (siamfc-pytorch)

    def holds(self, key: str) -> bool:
        return key.split('.', 1)[0] in self.modules


LAYOUTS = {
    'pysot': ReferenceLayout('pysot', 'BGR',
                             ('siamrpn_alexnet', 'siamrpn_r50_l234', 'siammask_r50_l3'),
                             ('backbone', 'neck', 'rpn_head', 'mask_head', 'refine_head'),
                             wrapped=True),
    'siamfc': ReferenceLayout('siamfc', 'RGB', ('siamfc_alexnet',), ('backbone', 'head'),
                              wrapped=False),
}


@dataclass(frozen=True)
class Exported:
    """What ``export_weights`` wrote: the file and the modules left out (a seed tracker's
    additions, such as CLNet's predictor, that the reference network has no place for)."""
    path: Path
    left_out: tuple[str, ...]


def input_convolution_key(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Key of the first convolution that reads the image: the first 4-d weight with 3 input
    channels in the state dict's order (the network's layer order)."""
    for key, tensor in state_dict.items():
        if key.endswith('weight') and tensor.ndim == 4 and tensor.shape[1] == 3:
            return key
    raise ValueError('no convolution with 3 input channels in the state dict: cannot tell which '
                     'layer reads the image')


def convert_colour_order(state_dict: Mapping[str, torch.Tensor], source: str,
                         target: str) -> dict[str, torch.Tensor]:
    """Weights for ``source`` colour order input -> the same network for ``target`` input
    (BGR <-> RGB reverses the input channels of the first convolution)."""
    for order in (source, target):
        if order not in COLOUR_ORDERS:
            raise ValueError(f"colour order must be one of {COLOUR_ORDERS}, got '{order}'")
    converted = dict(state_dict)
    if source != target:
        key = input_convolution_key(converted)
        converted[key] = converted[key].flip(1)
    return converted


def get_layout(layout_name: str) -> ReferenceLayout:
    if layout_name not in LAYOUTS:
        raise ValueError(f"unknown export format '{layout_name}'; use one of {sorted(LAYOUTS)}")
    return LAYOUTS[layout_name]


def left_out_modules(state_dict: Mapping[str, torch.Tensor], layout_name: str) -> tuple[str, ...]:
    """Top-level modules of ``state_dict`` that ``layout_name``'s network does not have."""
    return tuple(sorted({key.split('.', 1)[0] for key in state_dict
                         if not get_layout(layout_name).holds(key)}))


def reference_state(state_dict: Mapping[str, torch.Tensor], colour_order: str,
                    layout_name: str) -> dict:
    """The object ``torch.save`` writes for ``layout_name`` (``'pysot'`` or ``'siamfc'``):
    the reference network's tensors of ``state_dict`` (see ``left_out_modules``).

    Raises ValueError when the weights are not a network of that layout (e.g. SiamFC weights to
    pysot).
    """
    chosen = get_layout(layout_name)
    tensors = {key: value.detach().cpu().clone() for key, value in state_dict.items()
               if chosen.holds(key)}
    network = identify_checkpoint(tensors)
    if network not in chosen.trackers:
        raise ValueError(f"these weights are a {network or 'unknown'} network; the {chosen.name} "
                         f"layout holds {', '.join(chosen.trackers)} networks")
    tensors = convert_colour_order(tensors, colour_order, chosen.colour_order)
    return {'state_dict': tensors} if chosen.wrapped else tensors


def export_weights(state_dict: Mapping[str, torch.Tensor], colour_order: str, layout_name: str,
                   path) -> Exported:
    """Write weights expecting ``colour_order`` input in ``layout_name``'s layout."""
    payload = reference_state(state_dict, colour_order, layout_name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return Exported(path, left_out_modules(state_dict, layout_name))


def export_tracker(tracker, layout_name: str, path) -> Exported:
    """Write a built tracker's network in ``layout_name``'s layout. DROL's online classifier is
    learnt per sequence and is not part of the network; CLNet's predictor is left out."""
    return export_weights(tracker.model.state_dict(), tracker.colour_order, layout_name, path)
