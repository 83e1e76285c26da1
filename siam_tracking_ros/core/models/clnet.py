"""CLNet's compact latent network (Dong et al., ECCV 2020, section 3.3).

For one head branch (cls or loc of one RPN layer) the head is split as ``h = h_1(h_0)``: ``h_0``
ends with the hidden map ``M = f(x, z)`` (c channels, one hidden vector per score-map position)
and ``h_1`` is the last 1x1 conv with parameters ``theta_1`` (eq. 3). CLNet

* adjusts every hidden vector with ``g_a`` (three 1x1 conv + BN + ReLU blocks, c -> l channels),
* summarises the positive and negative sets by their mean and standard deviation (eq. 4) into
  the compact latent feature ``c = concat(mu+, sigma+, mu-, sigma-)`` (the loc branch uses the
  positive set only, since only positives train the regression),
* predicts ``delta theta_1 = g_delta(c)`` with FC 128, ReLU, FC 128, ReLU, FC n_params, tanh
  (eq. 5), which the tracker adds to ``theta_1`` (eq. 6) for the rest of the sequence (eq. 7).
  The last FC is zero-initialised, so that an untrained CLNet leaves its base unchanged.

Sizes follow section 4.1: l = 256 for cls and 512 for loc, so both latents have 1024 values.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from siam_tracking_ros.core.models.heads import LAST_LAYER_PARAMS

ENCODED_CHANNELS = {'cls': 256, 'loc': 512}
PREDICTOR_HIDDEN = 128
ADJUST_BLOCKS = 3


def feature_adjuster(in_channels: int, out_channels: int) -> nn.Sequential:
    """``g_a``: three 1x1 conv + BN + ReLU blocks (section 4.1)."""
    layers: list[nn.Module] = []
    channels = in_channels
    for _ in range(ADJUST_BLOCKS):
        layers += [nn.Conv2d(channels, out_channels, kernel_size=1, bias=False),
                   nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
        channels = out_channels
    return nn.Sequential(*layers)


def set_statistics(vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) standard deviation of a sample set ``(n, l)`` (eq. 4).

    Dividing by n, not n - 1, makes the statistics independent of how often each sample is
    repeated: the latent feature is "number-free" as section 3.3 requires.
    """
    if vectors.ndim != 2 or vectors.shape[0] == 0:
        raise ValueError(f'a sample set needs at least one (l,) vector, got shape '
                         f'{tuple(vectors.shape)}')
    mean = vectors.mean(dim=0)
    # eps inside the root keeps the gradient finite for a set of identical vectors.
    std = torch.sqrt(((vectors - mean) ** 2).mean(dim=0) + 1e-12)
    return mean, std


class ZeroInitLinear(nn.Linear):
    """The FC before g_delta's tanh, initialised (and re-initialised) to zero.

    tanh(0) = 0: an untrained CLNet predicts no delta and the tracker is exactly its base (eq. 6
    with delta theta_1 = 0). With PyTorch's default initialisation the first deltas are as large
    as the weights they adjust or larger, and overwrite the trained head. Training still moves
    the layer away from zero: its weight gradient is the (non-zero) hidden activation times the
    loss gradient, and the earlier layers follow once it is non-zero.
    """

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class CompactLatentNetwork(nn.Module):
    """CLNet for one head's last layer: hidden map + sample sets -> parameter deltas."""

    def __init__(self, hidden_channels: int, encoded_channels: int,
                 last_layer_shapes: Mapping[str, tuple[int, ...]], use_negatives: bool):
        super().__init__()
        self.use_negatives = use_negatives
        self.shapes = {name: tuple(shape) for name, shape in last_layer_shapes.items()}
        self.sizes = {name: int(torch.Size(shape).numel()) for name, shape in self.shapes.items()}
        latent_size = encoded_channels * (4 if use_negatives else 2)
        self.adjust = feature_adjuster(hidden_channels, encoded_channels)
        self.predict = nn.Sequential(
            nn.Linear(latent_size, PREDICTOR_HIDDEN), nn.ReLU(inplace=True),
            nn.Linear(PREDICTOR_HIDDEN, PREDICTOR_HIDDEN), nn.ReLU(inplace=True),
            ZeroInitLinear(PREDICTOR_HIDDEN, sum(self.sizes.values())), nn.Tanh())

    def latent(self, hidden: torch.Tensor, positive: torch.Tensor,
               negative: torch.Tensor | None) -> torch.Tensor:
        """Compact latent feature ``c`` from hidden maps ``(B, c, H, W)`` and position masks.

        ``positive`` / ``negative``: boolean ``(B, H, W)``; the sets pool every map of the batch
        (a batch holds pairs of one sequence, section 3.4).
        """
        if hidden.ndim != 4 or positive.shape != (hidden.shape[0], *hidden.shape[2:]):
            raise ValueError(f'hidden maps (B, c, H, W) {tuple(hidden.shape)} and positive mask '
                             f'{tuple(positive.shape)} do not match')
        vectors = self.adjust(hidden).permute(0, 2, 3, 1)  # (B, H, W, l)
        parts = list(set_statistics(vectors[positive]))  # mu+, sigma+
        if self.use_negatives:
            if negative is None or negative.shape != positive.shape:
                raise ValueError('the cls branch needs a negative mask shaped like the positive')
            parts += list(set_statistics(vectors[negative]))  # mu-, sigma-
        return torch.cat(parts)

    def forward(self, hidden: torch.Tensor, positive: torch.Tensor,
                negative: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Deltas for the last layer's parameters, by name relative to the head branch (eq. 5)."""
        flat = self.predict(self.latent(hidden, positive, negative))
        deltas, start = {}, 0
        for name, shape in self.shapes.items():
            deltas[name] = flat[start:start + self.sizes[name]].reshape(shape)
            start += self.sizes[name]
        return deltas


def head_branches(rpn_head: nn.Module) -> dict[str, nn.Module]:
    """The depth-wise xcorr branches of an RPN head by name prefix: ``cls``/``loc`` (one layer)
    or ``rpn{2,3,4}.cls``/``...loc`` (layer-wise aggregation)."""
    branches = {}
    for name, module in rpn_head.named_modules():
        if name.split('.')[-1] in ENCODED_CHANNELS and hasattr(module, 'head'):
            branches[name] = module
    if not branches:
        raise ValueError(f'{type(rpn_head).__name__} has no cls/loc branches with a head')
    return branches


class CLNetModules(nn.Module):
    """One :class:`CompactLatentNetwork` per head branch of an RPN head.

    Module keys replace the dots of the branch names (``rpn2.cls`` -> ``rpn2_cls``); the deltas
    are returned under the head's parameter names (``rpn2.cls.head.3.weight``), the mapping the
    RPN head accepts as ``param_deltas``.
    """

    # Set statistics and tanh-bounded parameter deltas: tiny, and run in float32 in every
    # precision (SiamRPNNet.full_precision_modules), like the head layers the deltas adjust.
    keeps_float32 = True

    def __init__(self, rpn_head: nn.Module):
        super().__init__()
        self.branch_names = list(head_branches(rpn_head))
        self.networks = nn.ModuleDict()
        for name, branch in head_branches(rpn_head).items():
            last = branch.head[-1]
            kind = name.split('.')[-1]
            shapes = {suffix: tuple(getattr(last, suffix.split('.')[-1]).shape)
                      for suffix in LAST_LAYER_PARAMS}
            self.networks[name.replace('.', '_')] = CompactLatentNetwork(
                last.in_channels, ENCODED_CHANNELS[kind], shapes, use_negatives=kind == 'cls')

    def forward(self, hidden_maps: Mapping[str, torch.Tensor], positive: torch.Tensor,
                negative: torch.Tensor) -> dict[str, torch.Tensor]:
        """``hidden_maps``: branch name -> ``(B, c, H, W)`` input of its last layer."""
        deltas = {}
        for name in self.branch_names:
            branch_deltas = self.networks[name.replace('.', '_')](hidden_maps[name], positive,
                                                                   negative)
            for suffix, delta in branch_deltas.items():
                deltas[f'{name}.{suffix}'] = delta
        return deltas


class HiddenMapRecorder:
    """Records the input of each branch's last layer (the hidden map M) during a head forward.

    Use as a context manager around ``model.rpn_head(...)``; ``maps`` then holds branch name ->
    ``(B, c, H, W)``. The head itself is unchanged: this reads what flows into ``h_1``.
    """

    def __init__(self, rpn_head: nn.Module):
        self.branches = head_branches(rpn_head)
        self.maps: dict[str, torch.Tensor] = {}
        self._handles = []

    def __enter__(self) -> HiddenMapRecorder:
        for name, branch in self.branches.items():
            self._handles.append(branch.head[-1].register_forward_pre_hook(self._keeper(name)))
        return self

    def _keeper(self, name: str):
        def keep(module, inputs):
            self.maps[name] = inputs[0]
        return keep

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
