"""Correlation heads: SiamFC's parameter-free xcorr and pysot's depth-wise RPN heads."""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

# The one layer whose parameters may be given a per-sequence delta (CLNet): the head's last conv.
LAST_LAYER_PARAMS = ('head.3.weight', 'head.3.bias')


def _correlate(search: torch.Tensor, kernel: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """``conv2d`` in float32, under autocast too (training with ``--precision``): autocast
    would cast it to fp16 / bf16 despite float32 inputs, and the sums over a template can pass
    fp16's range. The result keeps the search map's dtype."""
    with torch.autocast(search.device.type, enabled=False):
        return F.conv2d(search.float(), kernel.float(), groups=groups).to(search.dtype)


def xcorr_fast(template: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
    """Full-channel cross-correlation of each search map with the matching template.

    ``template`` ``(1 or N, C, k, k)``, ``search`` ``(N, C, H, W)`` -> ``(N, 1, H-k+1, W-k+1)``.
    """
    if template.size(0) == 1:
        # One template for every search map (SiamFC's scales): a plain one-filter convolution,
        # the same sums as the grouped form below, without its batch-of-groups reshaping.
        return _correlate(search, template)
    template = template.expand(search.size(0), -1, -1, -1)
    n, c, h, w = search.shape
    out = _correlate(search.reshape(1, n * c, h, w), template, groups=n)
    return out.reshape(n, 1, out.size(-2), out.size(-1))


def xcorr_depthwise(template: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
    """Channel-by-channel cross-correlation: ``(1 or N, C, k, k)`` x ``(N, C, H, W)`` -> ``(N, C, ..)``."""
    n, c, h, w = search.shape
    kernel = template.expand(n, -1, -1, -1).reshape(n * c, 1, template.size(2), template.size(3))
    out = _correlate(search.reshape(1, n * c, h, w), kernel, groups=n * c)
    return out.reshape(n, c, out.size(-2), out.size(-1))


class SiamFCHead(nn.Module):
    """siamfc-pytorch's head: xcorr scaled by ``out_scale``; no parameters."""

    def __init__(self, out_scale: float = 0.001):
        super().__init__()
        self.out_scale = out_scale

    def forward(self, template: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        # The sum runs over 6 x 6 x 256 products before the 0.001 scale: in fp16 it can pass
        # 65504, so the correlation is done in float32 whatever the features' dtype.
        return xcorr_fast(template.float(), search.float()) * self.out_scale


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class DepthwiseXCorr(nn.Module):
    """``conv_kernel`` / ``conv_search`` (3x3 conv-BN-ReLU), depth-wise xcorr, then ``head``
    (1x1 conv-BN-ReLU, 1x1 conv to ``out_channels``).

    The correlation runs in float32 whatever the features' dtype and its output takes the dtype
    of ``head``'s parameters: in reduced precision the score and box regressions keep float32
    from the correlation on when ``head`` is kept float32 (``full_precision_modules``).
    """

    def __init__(self, in_channels: int, hidden: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv_kernel = _conv_bn_relu(in_channels, hidden, kernel_size)
        self.conv_search = _conv_bn_relu(in_channels, hidden, kernel_size)
        self.head = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel_size=1, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True), nn.Conv2d(hidden, out_channels, kernel_size=1))

    def forward(self, template, search, param_deltas: Mapping[str, torch.Tensor] | None = None):
        hidden = xcorr_depthwise(self.conv_kernel(template).float(),
                                 self.conv_search(search).float())
        hidden = hidden.to(self.head[0].weight.dtype)
        if not param_deltas:
            return self.head(hidden)
        hidden = self.head[:3](hidden)
        last = self.head[3]
        weight = last.weight + param_deltas.get('head.3.weight', 0.0)
        bias = last.bias + param_deltas.get('head.3.bias', 0.0)
        return F.conv2d(hidden, weight, bias)


def _sub_deltas(param_deltas, prefix: str) -> dict[str, torch.Tensor]:
    return {name[len(prefix):]: value for name, value in (param_deltas or {}).items()
            if name.startswith(prefix)}


def check_param_deltas(head: nn.Module, param_deltas: Mapping[str, torch.Tensor] | None) -> None:
    """Raise ValueError unless every name is a last-layer parameter of ``head`` with its shape."""
    if not param_deltas:
        return
    parameters = dict(head.named_parameters())
    for name, delta in param_deltas.items():
        if not name.endswith(LAST_LAYER_PARAMS) or name not in parameters:
            allowed = sorted(n for n in parameters if n.endswith(LAST_LAYER_PARAMS))
            raise ValueError(f"head parameter delta '{name}' is not allowed; deltas apply to the "
                             f'last layer only: {allowed}')
        if tuple(delta.shape) != tuple(parameters[name].shape):
            raise ValueError(f"delta for '{name}' has shape {tuple(delta.shape)}, expected "
                             f'{tuple(parameters[name].shape)}')


class DepthwiseRPN(nn.Module):
    """One layer's RPN: ``cls`` (2A channels: A background then A foreground) and ``loc`` (4A)."""

    def __init__(self, anchor_num: int = 5, in_channels: int = 256, hidden: int = 256):
        super().__init__()
        self.cls = DepthwiseXCorr(in_channels, hidden, 2 * anchor_num)
        self.loc = DepthwiseXCorr(in_channels, hidden, 4 * anchor_num)

    def forward(self, template, search, param_deltas=None):
        cls = self.cls(template, search, _sub_deltas(param_deltas, 'cls.'))
        loc = self.loc(template, search, _sub_deltas(param_deltas, 'loc.'))
        return cls, loc


class SingleLayerRPN(DepthwiseRPN):
    """pysot's single-layer depth-wise RPN (keys ``cls``/``loc``) taking one-element lists."""

    def forward(self, templates, searches, param_deltas=None):
        check_param_deltas(self, param_deltas)
        return super().forward(templates[0], searches[0], param_deltas)


class MultiRPN(nn.Module):
    """``rpn{2,3,4}`` depth-wise RPNs fused with softmaxed ``cls_weight`` / ``loc_weight``."""

    def __init__(self, anchor_num: int, in_channels, weighted: bool = True):
        super().__init__()
        self.names = [f'rpn{i + 2}' for i in range(len(in_channels))]
        for name, channels in zip(self.names, in_channels):
            self.add_module(name, DepthwiseRPN(anchor_num, channels, channels))
        self.weighted = weighted
        if weighted:
            self.cls_weight = nn.Parameter(torch.ones(len(in_channels)))
            self.loc_weight = nn.Parameter(torch.ones(len(in_channels)))

    def forward(self, templates, searches, param_deltas=None):
        check_param_deltas(self, param_deltas)
        outputs = [getattr(self, name)(z, x, _sub_deltas(param_deltas, f'{name}.'))
                   for name, z, x in zip(self.names, templates, searches)]
        cls = torch.stack([c for c, _ in outputs])
        loc = torch.stack([l for _, l in outputs])
        if self.weighted:
            cls_weight = F.softmax(self.cls_weight, 0).to(cls.dtype)
            loc_weight = F.softmax(self.loc_weight, 0).to(loc.dtype)
        else:
            cls_weight = loc_weight = torch.full((len(outputs),), 1.0 / len(outputs),
                                                 dtype=cls.dtype, device=cls.device)
        return (torch.einsum('l,l...->...', cls_weight, cls),
                torch.einsum('l,l...->...', loc_weight, loc))
