"""Checks of target requests (box, stamp) before they reach the tracker, free of rclpy."""

from __future__ import annotations

import math

import numpy as np

from siam_tracking_ros.ros.frames import NANOSECONDS

# A box smaller than this gives the network a template of a few pixels to match: nothing to
# track, and the scale search would collapse it further.
MIN_BOX_SIDE_PX = 4.0
# Target ids are copied into every Detection2D and status message: short, printable text.
MAX_TARGET_ID_LENGTH = 64


class TargetRequestError(ValueError):
    """A target request the node refuses, with the reason as its message."""


def check_stamp(sec: int, nanosec: int) -> int:
    """Nanoseconds of a request's ``builtin_interfaces/Time`` stamp; refuses invalid fields
    (a nanosec of 1e9 or more would otherwise name a frame one second later)."""
    if sec < 0:
        raise TargetRequestError(f'stamp sec must not be negative, got {sec}')
    if not 0 <= nanosec < NANOSECONDS:
        raise TargetRequestError(f'stamp nanosec must be in [0, 1e9), got {nanosec}')
    return sec * NANOSECONDS + nanosec


def check_target_id(target_id: str) -> str:
    """``target_id`` if it can name a target, else TargetRequestError naming the problem.

    The empty id is valid: it names the target of a request that gives none (one target, as
    before ids existed). Others are at most MAX_TARGET_ID_LENGTH printable characters without
    leading or trailing white space (a subscriber compares them as given).
    """
    if len(target_id) > MAX_TARGET_ID_LENGTH:
        raise TargetRequestError(f'target_id must be at most {MAX_TARGET_ID_LENGTH} characters, '
                                 f'got {len(target_id)}')
    if not target_id.isprintable():
        raise TargetRequestError(f'target_id must be printable text without control '
                                 f'characters, got {target_id!r}')
    if target_id != target_id.strip():
        raise TargetRequestError(f'target_id must not start or end with white space, got '
                                 f'{target_id!r}')
    return target_id


def describe_ids(target_ids) -> str:
    """Target ids for a message: 'a', 'b' ('' for the unnamed target)."""
    return ', '.join(repr(target_id) for target_id in target_ids)


def check_box(box, image_shape, min_side: float = MIN_BOX_SIDE_PX) -> np.ndarray:
    """The ``(x, y, w, h)`` box as a float64 array, or TargetRequestError naming the problem.

    The box must be finite, each side at least ``min_side`` and at most the image's, and it must
    overlap the image.
    """
    values = [float(v) for v in box]
    if len(values) != 4:
        raise TargetRequestError(f'box must be (x, y, width, height), got {len(values)} values')
    if not all(math.isfinite(v) for v in values):
        raise TargetRequestError(f'box must be finite, got {values}')
    x, y, w, h = values
    height, width = int(image_shape[0]), int(image_shape[1])
    if w <= 0 or h <= 0:
        raise TargetRequestError(f'box width and height must be positive, got w={w:g}, h={h:g}')
    if w < min_side or h < min_side:
        raise TargetRequestError(
            f'box {w:g}x{h:g} is smaller than the minimum side of {min_side:g} pixels')
    if w > width or h > height:
        raise TargetRequestError(
            f'box {w:g}x{h:g} is larger than the {width}x{height} image')
    if x + w <= 0 or y + h <= 0 or x >= width or y >= height:
        raise TargetRequestError(
            f'box ({x:g}, {y:g}, {w:g}, {h:g}) does not overlap the {width}x{height} image')
    return np.array(values, dtype=np.float64)


def rescale_box(box, old_shape, new_shape) -> np.ndarray:
    """The box in the coordinates of a frame of ``new_shape`` showing the same view as one of
    ``old_shape`` (a camera switching resolution)."""
    sx = new_shape[1] / old_shape[1]
    sy = new_shape[0] / old_shape[0]
    x, y, w, h = (float(v) for v in box)
    return np.array([x * sx, y * sy, w * sx, h * sy], dtype=np.float64)
