"""OpenCV's CSRT tracker behind the project's tracker API, as a speed and accuracy baseline.

CSRT ships in opencv-contrib (``cv2.TrackerCSRT_create``, or ``cv2.legacy.TrackerCSRT_create`` in
some builds). It works on integer pixel rectangles; boxes cross the API as 0-based ``x, y, w, h``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

CSRT_NAME = 'opencv_csrt'


@dataclass(frozen=True)
class BaselineResult:
    """What ``track`` returns: 0-based box and whether OpenCV reported the target found."""

    box: np.ndarray
    found: bool


def _csrt_factory() -> Callable | None:
    import cv2

    for owner in (cv2, getattr(cv2, 'legacy', None)):
        factory = getattr(owner, 'TrackerCSRT_create', None) if owner is not None else None
        if factory is not None:
            return factory
    return None


def csrt_available() -> bool:
    return _csrt_factory() is not None


class OpenCVCsrt:
    """``init(image_bgr, box_xywh)`` / ``track(image_bgr)`` around ``cv2.TrackerCSRT``."""

    name = CSRT_NAME

    def __init__(self):
        factory = _csrt_factory()
        if factory is None:
            raise ValueError('OpenCV CSRT is not available: it needs '
                             'opencv-contrib-python(-headless) (cv2.TrackerCSRT_create)')
        self._factory = factory
        self._tracker = None
        self._box = np.zeros(4)

    def init(self, image_bgr: np.ndarray, box) -> None:
        self._tracker = self._factory()  # a fresh tracker per sequence
        self._box = np.asarray(box, dtype=np.float64)
        x, y, w, h = (int(round(v)) for v in self._box)
        self._tracker.init(image_bgr, (x, y, max(w, 1), max(h, 1)))

    def track(self, image_bgr: np.ndarray) -> BaselineResult:
        if self._tracker is None:
            raise RuntimeError('OpenCVCsrt.track called before init')
        found, box = self._tracker.update(image_bgr)
        if found:  # when lost, OpenCV returns no box: keep the last one
            self._box = np.asarray(box, dtype=np.float64)
        return BaselineResult(self._box.copy(), bool(found))
