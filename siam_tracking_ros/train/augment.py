"""Turning a frame pair into an augmented exemplar / search crop pair.

Crops follow the tracker's context rule: the exemplar square has side
``s_z = sqrt((w + p)(h + p))``, ``p = context * (w + h)``, and the search square
``s_x = s_z * instance / exemplar``, both cut by the core's reference crop (mean padding, the
tracker's corner rounding). Augmentation as in SiamFC / SiamRPN++ training: random shift and
scale of the crop window, blur, colour jitter, horizontal flip and conversion to grey.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from siam_tracking_ros.core import boxes
from siam_tracking_ros.core.crop import crop_and_resize_reference, square_corners
from siam_tracking_ros.core.windows import padded_side


@dataclass(frozen=True)
class CropConfig:
    """The tracker's crop geometry."""

    exemplar_size: int = 127
    instance_size: int = 255
    context_amount: float = 0.5
    corner_rule: str = 'pysot'
    # 'exemplar': the template is the exemplar crop z; 'search': it is the search-sized context
    # crop z^s around the template target (SA-Siam's semantic exemplar, section 3.1).
    template_region: str = 'exemplar'

    def __post_init__(self):
        if self.template_region not in ('exemplar', 'search'):
            raise ValueError(f"template_region must be 'exemplar' or 'search', got "
                             f"{self.template_region!r}")

    @property
    def template_size(self) -> int:
        """Output side of the template crop."""
        return self.exemplar_size if self.template_region == 'exemplar' else self.instance_size

    def template_side(self, size_wh: np.ndarray) -> float:
        """Side of the template window in image pixels for a target of ``(w, h)``."""
        side = exemplar_side(size_wh, self.context_amount)
        return side * self.template_size / self.exemplar_size


@dataclass(frozen=True)
class AugmentConfig:
    """Random changes applied to each pair (shift in output-crop pixels, scale as +- fraction)."""

    template_shift: float = 4.0
    template_scale: float = 0.05
    search_shift: float = 64.0
    search_scale: float = 0.18
    blur_probability: float = 0.2
    max_blur_sigma: float = 2.0
    colour_jitter: float = 0.1
    flip_probability: float = 0.5
    grey_probability: float = 0.25


@dataclass(frozen=True)
class CropPair:
    """An exemplar and a search crop (BGR uint8, square) and the target in the search crop.

    ``search_box`` is ``(cx, cy, w, h)`` in search-crop pixel-centre coordinates; None when the
    search crop shows a different object (negative pair).
    """

    template: np.ndarray
    search: np.ndarray
    search_box: np.ndarray | None


def exemplar_side(size_wh: np.ndarray, context_amount: float) -> float:
    """The tracker's context square side for a ``(w, h)`` target (``windows.padded_side``)."""
    return float(padded_side(float(size_wh[0]), float(size_wh[1]), context_amount))


def _uniform(rng: np.random.Generator, amount: float) -> float:
    return float(rng.uniform(-amount, amount)) if amount > 0 else 0.0


def _jittered_window(center: np.ndarray, side: float, out_size: int, shift: float, scale: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Move and rescale a crop window; ``shift`` is in output pixels, ``scale`` a fraction."""
    new_side = side * (1.0 + _uniform(rng, scale))
    pixels_per_output = new_side / out_size
    offset = np.array([_uniform(rng, shift), _uniform(rng, shift)]) * pixels_per_output
    return center + offset, new_side


def box_in_crop(box_center_size: np.ndarray, center: np.ndarray, side: float, out_size: int,
                corner_rule: str) -> np.ndarray:
    """Map a pixel-centre ``(cx, cy, w, h)`` into the crop the core cuts at ``center`` / ``side``.

    The crop takes an integer square (side ``s``, top-left pixel from the core's corner rule) and
    resizes it with OpenCV, whose sample ``i`` lies at square position ``(i + 0.5) s / out - 0.5``.
    """
    sides, top_left = square_corners(center[None], [side], corner_rule)
    zoom = out_size / sides[0]
    cx, cy = (box_center_size[:2] - top_left[0] + 0.5) * zoom - 0.5
    return np.array([cx, cy, box_center_size[2] * zoom, box_center_size[3] * zoom])


def _cut(image: np.ndarray, pad: np.ndarray, center: np.ndarray, side: float, out_size: int,
         crop: CropConfig) -> np.ndarray:
    return crop_and_resize_reference(image, center, side, out_size, pad, crop.corner_rule)


def _photometric(patch: np.ndarray, augment: AugmentConfig,
                 rng: np.random.Generator) -> np.ndarray:
    """Colour jitter (per-channel gain) and Gaussian blur, drawn for one crop."""
    out = patch.astype(np.float32)
    if augment.colour_jitter > 0:
        gains = 1.0 + rng.uniform(-augment.colour_jitter, augment.colour_jitter, size=3)
        brightness = rng.uniform(-augment.colour_jitter, augment.colour_jitter) * 255.0
        out = out * gains[None, None, :].astype(np.float32) + np.float32(brightness)
    if rng.random() < augment.blur_probability:
        sigma = rng.uniform(0.3, augment.max_blur_sigma)
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma)
    return np.clip(out, 0, 255).astype(np.uint8)


def _to_grey(patch: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def make_crop_pair(template_image: tuple[np.ndarray, np.ndarray], template_box: np.ndarray,
                   search_image: tuple[np.ndarray, np.ndarray], search_box: np.ndarray,
                   negative: bool, crop: CropConfig, augment: AugmentConfig,
                   rng: np.random.Generator) -> CropPair:
    """Cut and augment one training pair.

    ``template_image`` / ``search_image``: a BGR uint8 image and its channel mean (the padding
    value, as the trackers pad with the frame mean). ``template_box`` / ``search_box``: 0-based
    ``(x, y, w, h)`` of the object in each image. For a negative pair the search crop is still centred on ``search_box`` (another object, so that it
    shows something object-like) and the returned ``search_box`` is None.
    """
    template_cs = boxes.xywh_to_center_size(template_box)
    search_cs = boxes.xywh_to_center_size(search_box)
    z_center, z_side = _jittered_window(template_cs[:2], crop.template_side(template_cs[2:]),
                                        crop.template_size, augment.template_shift,
                                        augment.template_scale, rng)
    # The search window keeps the template's pixel scale (s_x = s_z * instance / exemplar) around
    # the object in the search frame, as the tracker does when following it.
    x_side = exemplar_side(search_cs[2:], crop.context_amount) * \
        crop.instance_size / crop.exemplar_size
    x_center, x_side = _jittered_window(search_cs[:2], x_side, crop.instance_size,
                                        augment.search_shift, augment.search_scale, rng)
    template = _cut(*template_image, z_center, z_side, crop.template_size, crop)
    search = _cut(*search_image, x_center, x_side, crop.instance_size, crop)
    target = None if negative else box_in_crop(search_cs, x_center, x_side, crop.instance_size,
                                               crop.corner_rule)
    template = _photometric(template, augment, rng)
    search = _photometric(search, augment, rng)
    if rng.random() < augment.grey_probability:
        template, search = _to_grey(template), _to_grey(search)
    if rng.random() < augment.flip_probability:
        # Both crops flip together: a mirrored object, still the same object in both.
        template, search = template[:, ::-1].copy(), search[:, ::-1].copy()
        if target is not None:
            target[0] = crop.instance_size - 1 - target[0]
    return CropPair(template=template, search=search, search_box=target)
