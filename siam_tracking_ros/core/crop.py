"""Exemplar / instance crops of the reference trackers, equal to theirs pixel for pixel.

Both reference implementations cut an integer square of side ``s = round(size)`` from the uint8
image padded with the first frame's per-channel mean, then resize it with OpenCV's bilinear
``cv2.resize`` on uint8 (no resize when ``s`` equals the output size). They differ in how the
square's top-left pixel is rounded from the pixel-centre ``center`` and in how the float mean
becomes the uint8 padding colour:

* ``'pysot'`` (``get_subwindow``): ``x_min = floor(cx - (s + 1) / 2 + 0.5)``; the mean is written
  into a uint8 canvas, which truncates it (133.95 -> 133);
* ``'siamfc'`` (siamfc-pytorch ``crop_and_resize``): ``x_min = round(cx - (s - 1) / 2)``; the mean
  is ``cv2.copyMakeBorder``'s value, which rounds it half to even (133.95 -> 134, 133.5 -> 134).

``crop_and_resize`` does exactly that with OpenCV on the uint8 frame (the CPU path).
``crop_and_resize_tensor`` computes the same uint8 values with torch on any device: it applies
OpenCV's fixed-point bilinear arithmetic (11-bit weights, its vertical pass's truncations and
final rounding) to the pixels each output sample reads, and uploads only the rows and columns the
squares touch.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

CORNER_RULES = ('pysot', 'siamfc')

# OpenCV's INTER_LINEAR on uint8: weights in units of 1/2048, two passes, 22 bits in all.
_WEIGHT_BITS = 11
_WEIGHT_ONE = 1 << _WEIGHT_BITS


def square_corners(centers, sizes, corner_rule: str = 'pysot') -> tuple[np.ndarray, np.ndarray]:
    """Integer sides ``s`` ``(N,)`` and top-left pixels ``(N, 2)`` of the squares to cut.

    ``centers`` ``(N, 2)`` are 0-based pixel-centre ``(cx, cy)``; ``sizes`` ``(N,)`` in pixels.
    ``round`` is half to even, as Python's ``round`` and ``np.round`` in both references.
    """
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    sides = np.round(np.asarray(sizes, dtype=np.float64).reshape(-1))
    if corner_rule == 'pysot':
        top_left = np.floor(centers - (sides[:, None] + 1.0) / 2.0 + 0.5)
    elif corner_rule == 'siamfc':
        top_left = np.round(centers - (sides[:, None] - 1.0) / 2.0)
    else:
        raise ValueError(f"unknown corner_rule '{corner_rule}'; use one of {CORNER_RULES}")
    return sides, top_left


def pad_colour(channel_mean, corner_rule: str = 'pysot') -> np.ndarray:
    """The uint8 padding colour ``(3,)`` a reference makes of the float channel mean.

    pysot assigns the mean to a uint8 array (truncation); siamfc-pytorch passes it to
    ``cv2.copyMakeBorder``, whose ``saturate_cast`` rounds half to even.
    """
    mean = np.asarray(channel_mean, dtype=np.float64).reshape(-1)
    if mean.shape != (3,) or not np.all(np.isfinite(mean)):
        raise ValueError(f'channel mean must be 3 finite values, got {mean.tolist()}')
    if corner_rule == 'pysot':
        colour = np.trunc(mean)
    elif corner_rule == 'siamfc':
        colour = np.rint(mean)
    else:
        raise ValueError(f"unknown corner_rule '{corner_rule}'; use one of {CORNER_RULES}")
    return np.clip(colour, 0, 255).astype(np.uint8)


def _check_crop_request(centers, sizes, out_size) -> tuple[np.ndarray, np.ndarray]:
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1)
    if len(centers) != len(sizes):
        raise ValueError(f'got {len(centers)} centres but {len(sizes)} sizes')
    if not (np.all(np.isfinite(centers)) and np.all(np.isfinite(sizes))):
        raise ValueError('crop centres and sizes must be finite')
    if np.any(np.round(sizes) < 1):
        raise ValueError(f'crop sizes must round to at least 1 pixel, got {sizes.tolist()}')
    if int(out_size) < 1:
        raise ValueError(f'out_size must be a positive integer, got {out_size}')
    return centers, sizes


def _check_pad(pad) -> np.ndarray:
    pad = np.asarray(pad)
    if pad.shape != (3,) or pad.dtype != np.uint8:
        raise ValueError(f'pad must be a uint8 colour of 3 channels (see pad_colour), got {pad!r}')
    return pad


def crop_and_resize(image: np.ndarray, centers, sizes, out_size: int, pad,
                    corner_rule: str = 'pysot') -> np.ndarray:
    """OpenCV crops of ``image`` ``H x W x 3`` uint8: ``(N, out_size, out_size, 3)`` uint8.

    ``centers`` ``(N, 2)`` pixel-centre ``(cx, cy)``; ``sizes`` ``(N,)`` square sides in image
    pixels; ``pad`` the uint8 colour outside the image (``pad_colour``).
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        raise ValueError('image must be a uint8 H x W x 3 numpy array, got '
                         f'{getattr(image, "dtype", type(image).__name__)} {np.shape(image)}')
    pad = _check_pad(pad)
    centers, sizes = _check_crop_request(centers, sizes, out_size)
    sides, top_left = square_corners(centers, sizes, corner_rule)
    out_size = int(out_size)
    crops = np.empty((len(sides), out_size, out_size, 3), dtype=np.uint8)
    for index, (side, (x_min, y_min)) in enumerate(zip(sides.astype(int), top_left.astype(int))):
        square = _square(image, x_min, y_min, side, pad)
        crops[index] = square if side == out_size else cv2.resize(
            square, (out_size, out_size), interpolation=cv2.INTER_LINEAR)
    return crops


def _square(image: np.ndarray, x_min: int, y_min: int, side: int, pad: np.ndarray) -> np.ndarray:
    """The ``side`` square at ``(x_min, y_min)``, contiguous, ``pad`` where it leaves the image."""
    height, width = image.shape[:2]
    x0, y0 = max(x_min, 0), max(y_min, 0)
    x1, y1 = min(x_min + side, width), min(y_min + side, height)
    if (x0, y0, x1, y1) == (x_min, y_min, x_min + side, y_min + side):
        return np.ascontiguousarray(image[y0:y1, x0:x1])
    square = np.empty((side, side, 3), dtype=np.uint8)
    square[:] = pad
    if x1 > x0 and y1 > y0:
        square[y0 - y_min:y1 - y_min, x0 - x_min:x1 - x_min] = image[y0:y1, x0:x1]
    return square


def crop_and_resize_reference(image: np.ndarray, center, size: float, out_size: int,
                              channel_mean, corner_rule: str = 'pysot') -> np.ndarray:
    """One crop ``out x out x 3`` uint8 padded with ``channel_mean`` rounded as the reference
    of ``corner_rule`` rounds it."""
    return crop_and_resize(image, [center], [size], out_size,
                           pad_colour(channel_mean, corner_rule), corner_rule)[0]


# ---------------------------------------------------------------------- fixed-point emulation
@dataclass(frozen=True)
class _Taps:
    """Per output sample along one axis: the two square positions read and their integer
    weights (sum 2048), as OpenCV's ``resize`` tabulates them."""
    first: np.ndarray
    second: np.ndarray
    first_weight: np.ndarray
    second_weight: np.ndarray


def _linear_taps(side: int, out_size: int, clamp_weights: bool) -> _Taps:
    """OpenCV's INTER_LINEAR taps for ``side -> out_size``.

    The position is computed in double and stored in float (``(float)((d + 0.5) * scale - 0.5)``
    with ``scale = 1 / (out / side)``), weights are ``round(w * 2048)`` of the float weights.
    Horizontally OpenCV moves a tap before the first or past the last pixel onto that pixel with
    weight one (``clamp_weights``); vertically it keeps the weights and clamps the row index.
    """
    scale = 1.0 / (out_size / side)
    position = ((np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(position).astype(np.int64)
    fraction = (position - first.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        outside = (first < 0) | (first >= side - 1)
        fraction[outside] = 0.0
    first_weight = np.rint((np.float32(1.0) - fraction) * np.float32(_WEIGHT_ONE))
    second_weight = np.rint(fraction * np.float32(_WEIGHT_ONE))
    return _Taps(np.clip(first, 0, side - 1), np.clip(first + 1, 0, side - 1),
                 first_weight.astype(np.int64), second_weight.astype(np.int64))


def _stacked_taps(sides: np.ndarray, starts: np.ndarray, out_size: int, clamp_weights: bool
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(N, out)`` image coordinates of both taps and ``(N, out)`` weights of each square."""
    taps = [_linear_taps(int(side), out_size, clamp_weights) for side in sides]
    starts = starts.astype(np.int64)
    first = np.stack([start + tap.first for start, tap in zip(starts, taps)])
    second = np.stack([start + tap.second for start, tap in zip(starts, taps)])
    return (first, second, np.stack([tap.first_weight for tap in taps]),
            np.stack([tap.second_weight for tap in taps]))


def crop_and_resize_tensor(image, centers, sizes, out_size: int, pad, corner_rule: str = 'pysot',
                           device: torch.device | str | None = None) -> torch.Tensor:
    """The crops of ``crop_and_resize`` computed with torch: ``(N, 3, out, out)`` float32.

    ``image``: a uint8 ``H x W x 3`` numpy array (only the touched rows and columns are moved to
    ``device``), or a ``(3, H, W)`` / ``(1, 3, H, W)`` tensor of integer values 0-255 (crops are
    made on its device). Values equal OpenCV's uint8 results.
    """
    region, offset = _touched_region(image, centers, sizes, out_size, corner_rule, device)
    pad = _check_pad(pad)
    sides, top_left = square_corners(centers, sizes, corner_rule)
    out_size = int(out_size)
    cols = _stacked_taps(sides, top_left[:, 0] - offset[0], out_size, clamp_weights=True)
    rows = _stacked_taps(sides, top_left[:, 1] - offset[1], out_size, clamp_weights=False)
    # One pixel of padding colour around the region stands for everything outside the image.
    height, width = region.shape[-2:]
    framed = torch.empty((3, height + 2, width + 2), dtype=torch.int32, device=region.device)
    framed[:] = torch.as_tensor(pad.astype(np.int32), device=region.device)[:, None, None]
    framed[:, 1:-1, 1:-1] = region.to(torch.int32)
    flat = framed.reshape(3, -1)

    def indices(coordinates: np.ndarray, extent: int) -> torch.Tensor:
        return torch.as_tensor(np.clip(coordinates + 1, 0, extent + 1), device=region.device)

    def weights(values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.int32, device=region.device)

    col_first, col_second = indices(cols[0], width), indices(cols[1], width)
    col_first_weight, col_second_weight = weights(cols[2])[:, None, :], weights(cols[3])[:, None, :]

    def horizontal_pass(row_index: np.ndarray) -> torch.Tensor:
        """``(3, N, out, out)`` row sums in units of 1/2048 for one tap row per output row."""
        base = indices(row_index, height)[:, :, None] * (width + 2)
        return (flat[:, base + col_first[:, None, :]] * col_first_weight
                + flat[:, base + col_second[:, None, :]] * col_second_weight)

    # OpenCV's vectorised vertical pass: (((S >> 4) * w) >> 16) per row, sum, round off 2 bits.
    top, bottom = horizontal_pass(rows[0]), horizontal_pass(rows[1])
    top_weight, bottom_weight = weights(rows[2])[:, :, None], weights(rows[3])[:, :, None]
    total = ((top >> 4) * top_weight >> 16) + ((bottom >> 4) * bottom_weight >> 16)
    values = ((total + 2) >> 2).clamp_(0, 255)
    return values.permute(1, 0, 2, 3).to(torch.float32)


def _touched_region(image, centers, sizes, out_size, corner_rule, device
                    ) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(3, h, w)`` tensor of the image rows/columns the squares reach, and its ``(x, y)``
    offset in the image. Large frames, small targets: only this part is read (and uploaded)."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'image must be uint8 H x W x 3, got {image.dtype} {image.shape}')
        height, width = image.shape[:2]
    else:
        if image.dim() == 4 and image.shape[0] == 1:
            image = image[0]
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f'image must be (1, 3, H, W) or (3, H, W), got {tuple(image.shape)}')
        height, width = image.shape[-2:]
    centers, sizes = _check_crop_request(centers, sizes, out_size)
    sides, top_left = square_corners(centers, sizes, corner_rule)
    x0 = int(np.clip(top_left[:, 0].min(), 0, width - 1))
    x1 = int(np.clip((top_left[:, 0] + sides).max(), x0 + 1, width))
    y0 = int(np.clip(top_left[:, 1].min(), 0, height - 1))
    y1 = int(np.clip((top_left[:, 1] + sides).max(), y0 + 1, height))
    if isinstance(image, np.ndarray):
        pixels = torch.from_numpy(np.ascontiguousarray(image[y0:y1, x0:x1]))
        region = pixels.to(device or 'cpu', non_blocking=True).permute(2, 0, 1)
    else:
        region = image[:, y0:y1, x0:x1]
        if device is not None:
            region = region.to(device)
    return region, (x0, y0)
