"""Propose a target box around a clicked pixel.

The object under the click is taken to be the blob that stands out in colour from its
surroundings: in a square window of three times ``box_size`` around the click, the median
colour of the window border stands for the background, each pixel's CIELAB distance to it is
thresholded with Otsu's method, and the connected blob under (or next to) the click gives
the box. When nothing stands out (flat region, blob touching the window border, blob too
small) the proposal falls back to a ``box_size`` square centred on the click.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Below this CIELAB distance (about the just-noticeable difference times five) the window
# is treated as having no foreground.
MIN_CONTRAST = 12.0
MIN_BLOB_PIXELS = 16


@dataclass(frozen=True)
class BoxProposal:
    box: tuple[float, float, float, float]
    method: str  # 'contrast' (blob found) or 'default' (fixed-size square)


def _window(image_shape, x: float, y: float, half: int) -> tuple[int, int, int, int]:
    height, width = image_shape[:2]
    left, top = max(0, int(x) - half), max(0, int(y) - half)
    right, bottom = min(width, int(x) + half + 1), min(height, int(y) + half + 1)
    return left, top, right, bottom


def _contrast_map(patch_bgr: np.ndarray) -> np.ndarray:
    """CIELAB distance of every pixel to the median colour of the patch border."""
    # Float input makes OpenCV return true CIELAB units (L in 0..100), so MIN_CONTRAST is a
    # colour difference rather than a byte-scaled one.
    lab = cv2.cvtColor(patch_bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)
    band = max(2, min(lab.shape[:2]) // 12)
    border = np.concatenate([lab[:band].reshape(-1, 3), lab[-band:].reshape(-1, 3),
                             lab[:, :band].reshape(-1, 3), lab[:, -band:].reshape(-1, 3)])
    background = np.median(border, axis=0)
    return np.linalg.norm(lab - background, axis=2)


def _blob_at(mask: np.ndarray, px: int, py: int, reach: float) -> np.ndarray | None:
    """Pixels of the connected blob under (px, py), or of the nearest one within ``reach``."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return None
    label = labels[py, px]
    if label == 0:
        ys, xs = np.nonzero(labels)
        distances = np.hypot(xs - px, ys - py)
        nearest = int(np.argmin(distances))
        if distances[nearest] > reach:
            return None
        label = labels[ys[nearest], xs[nearest]]
    return labels == label


def _blob_box(blob: np.ndarray, patch_shape) -> tuple[int, int, int, int] | None:
    """Bounding box of the blob inside the patch, None if it is too small or touches the
    patch border (then it is background structure rather than an object)."""
    if int(blob.sum()) < MIN_BLOB_PIXELS:
        return None
    ys, xs = np.nonzero(blob)
    left, top, right, bottom = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    if left == 0 or top == 0 or right == patch_shape[1] or bottom == patch_shape[0]:
        return None
    return int(left), int(top), int(right - left), int(bottom - top)


def default_box(image_shape, x: float, y: float, box_size: float) -> tuple[float, ...]:
    """A ``box_size`` square centred on the click, clipped to the image."""
    height, width = image_shape[:2]
    left, top = max(0.0, x - box_size / 2), max(0.0, y - box_size / 2)
    right, bottom = min(float(width), x + box_size / 2), min(float(height), y + box_size / 2)
    return left, top, right - left, bottom - top


def propose_box(image_bgr: np.ndarray, x: float, y: float, box_size: float) -> BoxProposal:
    """A box around pixel (x, y) of a BGR image; raises ValueError for a point off the image."""
    height, width = image_bgr.shape[:2]
    if not (math.isfinite(x) and math.isfinite(y) and 0 <= x < width and 0 <= y < height):
        raise ValueError(f'point ({x:g}, {y:g}) lies outside the {width}x{height} image')
    if not math.isfinite(box_size) or box_size < 2:
        raise ValueError(f'point box size must be at least 2 pixels, got {box_size:g}')
    half = int(round(1.5 * box_size))
    left, top, right, bottom = _window(image_bgr.shape, x, y, half)
    patch = image_bgr[top:bottom, left:right]
    fallback = BoxProposal(default_box(image_bgr.shape, x, y, box_size), 'default')
    if min(patch.shape[:2]) < 8:
        return fallback
    contrast = _contrast_map(patch)
    if float(contrast.max()) < MIN_CONTRAST:
        return fallback
    scaled = np.clip(contrast * (255.0 / float(contrast.max())), 0, 255).astype(np.uint8)
    _, mask = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    blob = _blob_at(mask, int(x) - left, int(y) - top, reach=box_size / 2)
    found = _blob_box(blob, patch.shape) if blob is not None else None
    if found is None:
        return fallback
    bx, by, bw, bh = found
    return BoxProposal((float(bx + left), float(by + top), float(bw), float(bh)), 'contrast')
