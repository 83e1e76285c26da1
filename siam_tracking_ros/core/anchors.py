"""RPN anchors (pysot conventions) and their decoding.

Anchor layout: index ``a * S * S + row * S + col`` for anchor shape ``a`` at score-map position
``(row, col)``; the RPN's ``4A`` loc channels are ``dx`` for all anchors, then ``dy``, ``dw``, ``dh``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

ANCHOR_STRIDE = 8
ANCHOR_RATIOS = (0.33, 0.5, 1.0, 2.0, 3.0)
ANCHOR_SCALES = (8.0,)


def anchor_shapes(stride: int = ANCHOR_STRIDE, ratios=ANCHOR_RATIOS, scales=ANCHOR_SCALES
                  ) -> np.ndarray:
    """``(A, 2)`` anchor ``(w, h)``: base area stride^2, integer-truncated as pysot does.

    For ratio r: ``ws = int(sqrt(stride^2 / r))``, ``hs = int(ws * r)``, then times each scale.
    """
    area = float(stride * stride)
    shapes = []
    for ratio in ratios:
        base_w = int(math.sqrt(area / ratio))
        base_h = int(base_w * ratio)
        for scale in scales:
            shapes.append((base_w * scale, base_h * scale))
    return np.asarray(shapes, dtype=np.float64)


def anchor_grid(score_size: int, stride: int = ANCHOR_STRIDE, ratios=ANCHOR_RATIOS,
                scales=ANCHOR_SCALES) -> np.ndarray:
    """``(A, S, S, 4)`` anchors ``(cx, cy, w, h)`` in crop pixels relative to the crop centre.

    Centres step by ``stride`` from ``-(S // 2) * stride``, as pysot's ``generate_anchor``.
    """
    if score_size < 1:
        raise ValueError(f'score_size must be positive, got {score_size}')
    shapes = anchor_shapes(stride, ratios, scales)
    offsets = (np.arange(score_size) - score_size // 2) * float(stride)
    grid = np.empty((len(shapes), score_size, score_size, 4), dtype=np.float64)
    grid[..., 0] = offsets[None, None, :]
    grid[..., 1] = offsets[None, :, None]
    grid[..., 2] = shapes[:, 0, None, None]
    grid[..., 3] = shapes[:, 1, None, None]
    return grid


def decode_deltas(deltas, anchors):
    """Decode RPN regression ``(4, A, S, S)`` (dx, dy, dw, dh) against anchors ``(A, S, S, 4)``.

    ``cx = dx * wa + xa``, ``cy = dy * ha + ya``, ``w = exp(dw) * wa``, ``h = exp(dh) * ha``.
    Returns ``(A, S, S, 4)`` boxes ``(cx, cy, w, h)`` in the anchors' coordinates. Torch tensors
    or NumPy arrays (the latter compute in the anchors' dtype with NumPy's ``exp``, as pysot).
    """
    if isinstance(deltas, torch.Tensor):
        dx, dy, dw, dh = deltas.to(anchors.dtype)
        xa, ya, wa, ha = anchors.unbind(-1)
        return torch.stack([dx * wa + xa, dy * ha + ya, torch.exp(dw) * wa, torch.exp(dh) * ha],
                           -1)
    dx, dy, dw, dh = np.asarray(deltas).astype(anchors.dtype, copy=False)
    xa, ya, wa, ha = np.moveaxis(anchors, -1, 0)
    return np.stack([dx * wa + xa, dy * ha + ya, np.exp(dw) * wa, np.exp(dh) * ha], -1)


def score_map_size(instance_size: int, exemplar_size: int, stride: int, base_size: int) -> int:
    """pysot score map side: ``(instance - exemplar) // stride + 1 + base_size``."""
    return (instance_size - exemplar_size) // stride + 1 + base_size


# Anchor labels of SiamRPN++'s sampling (training targets; CLNet's first-frame sample sets), and
# its rule: IoU > 0.6 positive, < 0.3 negative, at most 16 positives of 64 samples.
POSITIVE, NEGATIVE, IGNORED = 1, 0, -1
POSITIVE_IOU, NEGATIVE_IOU = 0.6, 0.3
MAX_POSITIVES, TOTAL_SAMPLES = 16, 64


def keep_at_most(indices: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``indices`` itself, or ``count`` of them drawn without replacement."""
    if len(indices) <= count:
        return indices
    return rng.choice(indices, size=count, replace=False)


def sample_anchor_labels(overlaps: np.ndarray, rng: np.random.Generator,
                         positive_iou: float = POSITIVE_IOU, negative_iou: float = NEGATIVE_IOU,
                         max_positives: int = MAX_POSITIVES,
                         total_samples: int = TOTAL_SAMPLES) -> np.ndarray:
    """``(N,)`` labels from the anchors' IoU with the target, sampled as SiamRPN++ does: at most
    ``max_positives`` anchors with IoU > ``positive_iou``, negatives (IoU < ``negative_iou``) up
    to ``total_samples`` in all, every other anchor IGNORED. Positives are drawn first."""
    overlaps = np.asarray(overlaps, dtype=np.float64).reshape(-1)
    labels = np.full(len(overlaps), IGNORED, dtype=np.int64)
    positives = keep_at_most(np.flatnonzero(overlaps > positive_iou), max_positives, rng)
    negatives = keep_at_most(np.flatnonzero(overlaps < negative_iou),
                             total_samples - len(positives), rng)
    labels[positives] = POSITIVE
    labels[negatives] = NEGATIVE
    return labels
