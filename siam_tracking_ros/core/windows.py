"""Cosine windows and the scale / aspect penalties of SiamRPN and SiamFC.

The penalty functions accept NumPy arrays or torch tensors (the trackers keep score maps on the
device) and return the same kind.
"""
from __future__ import annotations

import numpy as np
import torch


def hanning_window(size: int, normalise: bool = False) -> np.ndarray:
    """``(size, size)`` outer product of ``np.hanning(size)``.

    pysot uses it unnormalised; siamfc-pytorch divides it by its sum (``normalise=True``).
    """
    if size < 1:
        raise ValueError(f'window size must be positive, got {size}')
    window = np.outer(np.hanning(size), np.hanning(size))
    if normalise:
        window = window / window.sum()
    return window


def change(ratio):
    """``max(r, 1 / r)``: how far a ratio is from 1 in either direction."""
    if isinstance(ratio, torch.Tensor):
        return torch.maximum(ratio, 1.0 / ratio)
    ratio = np.asarray(ratio, dtype=np.float64)
    return np.maximum(ratio, 1.0 / ratio)


def padded_side(width, height, context_amount: float = 0.5):
    """``sqrt((w + p)(h + p))`` with ``p = context_amount * (w + h)``: pysot's ``sz``, the side of
    the exemplar's context square (unrounded). Works on floats, arrays and tensors.

    A square root as both references take it (``x ** 0.5`` of a Python float is ``pow``, which
    differs from ``sqrt`` in the last bit for about one value in a thousand)."""
    pad = (width + height) * context_amount
    area = (width + pad) * (height + pad)
    return torch.sqrt(area) if isinstance(area, torch.Tensor) else np.sqrt(area)


def siamrpn_penalty(pred_w, pred_h, target_w: float, target_h: float, penalty_k: float,
                    target_scale: float = 1.0):
    """SiamRPN scale and aspect change penalty ``exp(-(r_c * s_c - 1) * penalty_k)``.

    ``pred_w/h``: predicted sizes (any shape) in crop pixels; ``target_w/h``: previous size,
    ``target_scale`` times it in crop pixels. ``s_c`` is the change of ``padded_side`` and ``r_c``
    the change of aspect ratio. The arithmetic is pysot's: ratio of the unscaled target, the
    predictions' padded side in their own dtype (float32 there), the rest in float64.
    """
    if not isinstance(pred_w, torch.Tensor):
        pred_w, pred_h = np.asarray(pred_w), np.asarray(pred_h)
        target_w, target_h = np.float64(target_w), np.float64(target_h)
    target_side = padded_side(target_w * target_scale, target_h * target_scale)
    scale_change = change(padded_side(pred_w, pred_h) / target_side)
    ratio_change = change((target_w / target_h) / (pred_w / pred_h))
    exponent = -(ratio_change * scale_change - 1.0) * penalty_k
    return torch.exp(exponent) if isinstance(exponent, torch.Tensor) else np.exp(exponent)


def siamfc_scale_penalties(num_scales: int, scale_penalty: float) -> np.ndarray:
    """``(S,)`` multipliers of the responses: ``scale_penalty`` for every scale but the middle."""
    penalties = np.full(num_scales, scale_penalty, dtype=np.float64)
    penalties[num_scales // 2] = 1.0
    return penalties


def siamfc_scale_factors(num_scales: int, scale_step: float) -> np.ndarray:
    """``scale_step ** linspace(-(S // 2), S // 2, S)`` (siamfc-pytorch)."""
    half = num_scales // 2
    return scale_step ** np.linspace(-half, half, num_scales)
