"""Box conventions and conversions.

Conventions used across the project:

* ``xywh``: ``(x, y, w, h)``, 0-based, ``x, y`` the top-left pixel of an OpenCV rectangle.
* ``one_based``: the same rectangle with the top-left pixel counted from 1 (UAV123, OTB files).
* ``center_size``: ``(cx, cy, w, h)`` in 0-based pixel-centre coordinates, ``cx = x + (w - 1) / 2``.
  This is the centre the reference trackers crop around.
* ``corners``: ``(x1, y1, x2, y2)`` continuous corners, ``x2 = x + w`` (exclusive edge).

Every function accepts a single box of shape ``(4,)`` or a batch of shape ``(N, 4)`` and returns
the same leading shape as float64.
"""
from __future__ import annotations

import numpy as np


def _as_boxes(boxes) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.shape[-1:] != (4,) or array.ndim not in (1, 2):
        raise ValueError(f'boxes must have shape (4,) or (N, 4), got {array.shape}')
    return array


def one_based_to_zero_based(boxes) -> np.ndarray:
    """1-based annotation ``(x, y, w, h)`` -> 0-based ``xywh``."""
    out = _as_boxes(boxes).copy()
    out[..., :2] -= 1.0
    return out


def zero_based_to_one_based(boxes) -> np.ndarray:
    """0-based ``xywh`` -> 1-based annotation ``(x, y, w, h)``."""
    out = _as_boxes(boxes).copy()
    out[..., :2] += 1.0
    return out


def xywh_to_center_size(boxes) -> np.ndarray:
    """0-based ``xywh`` -> pixel-centre ``(cx, cy, w, h)`` with ``cx = x + (w - 1) / 2``."""
    box = _as_boxes(boxes)
    out = box.copy()
    out[..., :2] = box[..., :2] + (box[..., 2:] - 1.0) / 2.0
    return out


def center_size_to_xywh(boxes) -> np.ndarray:
    """Pixel-centre ``(cx, cy, w, h)`` -> 0-based ``xywh`` (inverse of ``xywh_to_center_size``)."""
    box = _as_boxes(boxes)
    out = box.copy()
    out[..., :2] = box[..., :2] - (box[..., 2:] - 1.0) / 2.0
    return out


def xywh_to_corners(boxes) -> np.ndarray:
    """0-based ``xywh`` -> continuous corners ``(x1, y1, x2, y2)``, ``x2 = x + w``."""
    box = _as_boxes(boxes)
    return np.concatenate([box[..., :2], box[..., :2] + box[..., 2:]], axis=-1)


def corners_to_xywh(boxes) -> np.ndarray:
    """Continuous corners ``(x1, y1, x2, y2)`` -> 0-based ``xywh``."""
    box = _as_boxes(boxes)
    return np.concatenate([box[..., :2], box[..., 2:] - box[..., :2]], axis=-1)


def iou(boxes_a, boxes_b) -> np.ndarray:
    """Intersection over union of 0-based ``xywh`` boxes, broadcast element-wise.

    ``(4,)`` with ``(N, 4)`` gives ``(N,)``; ``(N, 4)`` with ``(N, 4)`` gives ``(N,)``; two single
    boxes give a 0-d array. Boxes with no area have IoU 0.
    """
    a = xywh_to_corners(boxes_a)
    b = xywh_to_corners(boxes_b)
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    intersection = inter_w * inter_h
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area_a + area_b - intersection
    return np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)


def validate_xywh(box, image_shape) -> np.ndarray:
    """Check a 0-based ``xywh`` box given to a tracker and return it as a float64 ``(4,)`` array.

    Raises ValueError naming the problem: wrong shape, non-finite values, non-positive size, or a
    box that does not overlap the image of shape ``(H, W, ...)``.
    """
    array = np.asarray(box, dtype=np.float64)
    if array.shape != (4,):
        raise ValueError(f'box must be (x, y, w, h) with 4 values, got shape {array.shape}')
    if not np.all(np.isfinite(array)):
        raise ValueError(f'box must be finite, got {array.tolist()}')
    if array[2] <= 0 or array[3] <= 0:
        raise ValueError(f'box width and height must be positive, got w={array[2]}, h={array[3]}')
    height, width = image_shape[:2]
    x1, y1, x2, y2 = xywh_to_corners(array)
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        raise ValueError(
            f'box {array.tolist()} does not overlap the {width}x{height} image')
    return array
