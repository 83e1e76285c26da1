"""How a dataset's boxes become the tracker's first box, and the tracker's boxes result files.

Trackers take and return 0-based ``(x, y, w, h)`` boxes whose centre is ``x + (w - 1) / 2``
(``core.boxes``). Two conventions map them to the 1-based files of UAV123 / OTB:

* ``package``: the file's 1-based box moved by -1 (so the tracker starts on the annotated pixels),
  results written back 1-based (``x + 1``); the first line is the ground truth. siamfc-pytorch with
  the got10k toolkit does the same.
* ``pysot``: as pysot's ``tools/test.py``: the file's box gives ``cx = x + w / 2`` and the tracker
  starts on ``cx - (w - 1) / 2``, i.e. ``x + 0.5`` (the 1-based values read as 0-based, half a
  pixel on); results are written as pysot's tracker reports them, ``x = cx - w / 2`` (0.5 px left
  of the 0-based box), and the first line is the box the tracker started on. Result files then
  compare with published pysot result files.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BoxConvention:
    """Offsets added to ``x, y`` (sizes are unchanged in both conventions)."""
    name: str
    read_offset: float  # file box -> the tracker's first 0-based box
    write_offset: float  # tracker's 0-based box -> result file
    first_line_offset: float  # ground-truth first box -> the result file's first line

    def tracker_box(self, file_box) -> np.ndarray:
        return _moved(file_box, self.read_offset)

    def result_boxes(self, tracker_boxes) -> np.ndarray:
        return _moved(tracker_boxes, self.write_offset)

    def first_line(self, file_box) -> np.ndarray:
        return _moved(file_box, self.first_line_offset)


def _moved(box_array, offset: float) -> np.ndarray:
    moved = np.array(box_array, dtype=np.float64)
    if moved.shape[-1:] != (4,):
        raise ValueError(f'boxes must have 4 values x, y, w, h; got shape {moved.shape}')
    moved[..., :2] += offset
    return moved


CONVENTIONS = {
    'package': BoxConvention('package', read_offset=-1.0, write_offset=1.0,
                             first_line_offset=0.0),
    'pysot': BoxConvention('pysot', read_offset=0.5, write_offset=-0.5, first_line_offset=0.5),
}
DEFAULT_CONVENTION = 'package'


def convention(name: str) -> BoxConvention:
    if name not in CONVENTIONS:
        raise ValueError(f"unknown box convention '{name}'; use one of {sorted(CONVENTIONS)}")
    return CONVENTIONS[name]
