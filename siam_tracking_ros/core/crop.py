"""Exemplar / instance crops of the reference trackers.

Both reference implementations cut an integer square of side ``s = round(size)`` from the image
padded with the per-channel image mean, then resize it with OpenCV's bilinear ``cv2.resize``. They
differ only in how the square's top-left pixel is rounded from the pixel-centre ``center``:

* ``'pysot'``: ``x_min = floor(cx - (s + 1) / 2 + 0.5)`` (pysot ``get_subwindow``);
* ``'siamfc'``: ``x_min = round(cx - (s - 1) / 2)`` (siamfc-pytorch ``crop_and_resize``).

``crop_and_resize`` reproduces that on the tracker's device for several squares at once with
``grid_sample``: it samples exactly where ``cv2.resize`` samples (half-pixel centres, coordinates
clamped to the square), and interpolating ``image - pad`` with zeros outside the image and adding
``pad`` back equals interpolating the mean-padded image, since bilinear interpolation is linear.
``crop_and_resize_reference`` is the plain OpenCV version the tests compare against.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

CORNER_RULES = ('pysot', 'siamfc')


def square_corners(centers, sizes, corner_rule: str = 'pysot') -> tuple[np.ndarray, np.ndarray]:
    """Integer sides ``s`` ``(N,)`` and top-left pixels ``(N, 2)`` of the squares to cut.

    ``centers`` ``(N, 2)`` are 0-based pixel-centre ``(cx, cy)``; ``sizes`` ``(N,)`` in pixels.
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


def _sample_coordinates(starts: np.ndarray, sides: np.ndarray, out_size: int) -> np.ndarray:
    """``(N, out)`` image coordinates where ``cv2.resize`` samples each square along one axis."""
    steps = (np.arange(out_size, dtype=np.float64) + 0.5)[None, :] * (sides[:, None] / out_size)
    inside_square = np.clip(steps - 0.5, 0.0, sides[:, None] - 1.0)
    return starts[:, None] + inside_square


def crop_and_resize(image: torch.Tensor, centers, sizes, out_size: int, pad_value,
                    corner_rule: str = 'pysot') -> torch.Tensor:
    """Batched reference crop on ``image``'s device.

    ``image``: ``(1, 3, H, W)`` or ``(3, H, W)`` float tensor; ``centers`` ``(N, 2)`` pixel-centre
    ``(cx, cy)``; ``sizes`` ``(N,)`` square sides in image pixels; ``pad_value`` ``(3,)`` per-channel
    value outside the image. Returns ``(N, 3, out_size, out_size)`` float32.
    """
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f'image must be (1, 3, H, W) or (3, H, W), got {tuple(image.shape)}')
    centers, sizes = _check_crop_request(centers, sizes, out_size)
    sides, top_left = square_corners(centers, sizes, corner_rule)
    xs = _sample_coordinates(top_left[:, 0], sides, out_size)
    ys = _sample_coordinates(top_left[:, 1], sides, out_size)
    height, width = image.shape[-2:]
    # Only the rows/columns the samples touch take part: large frames, small targets.
    x0 = int(np.clip(np.floor(xs.min()), 0, width - 1))
    x1 = int(np.clip(np.floor(xs.max()) + 2, x0 + 1, width))
    y0 = int(np.clip(np.floor(ys.min()), 0, height - 1))
    y1 = int(np.clip(np.floor(ys.max()) + 2, y0 + 1, height))
    pad = torch.as_tensor(pad_value, dtype=torch.float32, device=image.device).reshape(1, 3, 1, 1)
    region = image[:, :, y0:y1, x0:x1].float() - pad
    grid = _normalised_grid(xs - x0, ys - y0, x1 - x0, y1 - y0, image.device)
    sampled = F.grid_sample(region.expand(len(sides), -1, -1, -1), grid, mode='bilinear',
                            padding_mode='zeros', align_corners=False)
    return sampled + pad


def _normalised_grid(xs: np.ndarray, ys: np.ndarray, width: int, height: int,
                     device: torch.device) -> torch.Tensor:
    """``grid_sample`` grid ``(N, out, out, 2)`` for pixel coordinates (align_corners=False)."""
    gx = torch.as_tensor((2.0 * xs + 1.0) / width - 1.0, dtype=torch.float32, device=device)
    gy = torch.as_tensor((2.0 * ys + 1.0) / height - 1.0, dtype=torch.float32, device=device)
    n, out = gx.shape
    return torch.stack([gx[:, None, :].expand(n, out, out), gy[:, :, None].expand(n, out, out)],
                       dim=-1)


def crop_and_resize_reference(image: np.ndarray, center, size: float, out_size: int, pad,
                              corner_rule: str = 'pysot') -> np.ndarray:
    """OpenCV crop of one square: pad with ``cv2.copyMakeBorder``, cut, ``cv2.resize``.

    ``image`` ``H x W x 3``; ``center`` pixel-centre ``(cx, cy)``; returns ``out x out x 3`` of the
    image's dtype.
    """
    centers, sizes = _check_crop_request(center, [size], out_size)
    sides, top_left = square_corners(centers, sizes, corner_rule)
    side = int(sides[0])
    x_min, y_min = (int(v) for v in top_left[0])
    height, width = image.shape[:2]
    border = max(0, -x_min, -y_min, x_min + side - width, y_min + side - height)
    if border > 0:
        image = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT,
                                   value=tuple(float(v) for v in pad))
    patch = image[y_min + border:y_min + border + side, x_min + border:x_min + border + side]
    if side != out_size:
        patch = cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_LINEAR)
    return patch
