"""One-pass evaluation (OPE) scores as the OTB / UAV123 toolkits and pysot compute them.

Per sequence, over the frames whose ground truth is a real box:

* **success curve**: fraction of frames whose IoU with the ground truth is *strictly greater* than
  each of the 21 thresholds ``np.linspace(0, 1, 21)``; its **AUC** is the mean of the curve. Since
  no IoU exceeds 1, the last point is always 0 and a perfect tracker scores 20/21 = 0.952.
* **precision curve**: fraction of frames whose centre error is *at most* each threshold
  0, 1, ..., 50 pixels; reported at 20 px.
* **normalised precision** (LaSOT / pysot): the centre error measured after dividing x and y by the
  ground-truth width and height, thresholds ``np.linspace(0, 0.5, 51)``; reported at 0.2.

Centres follow pysot's ``x + (w - 1) / 2`` pixel-centre convention; centre differences are the same
whether both boxes are 0- or 1-based. The first frame (where the tracker output is the ground
truth it was initialised with) is scored, as in OTB / UAV123 OPE.

Frames whose ground truth is NaN (target out of view or fully occluded) or has a non-positive size
are left out of both numerator and denominator, as the UAV123 dataset notes prescribe. (pysot keeps
them in the denominator, which lowers scores on sequences with absent frames.) A tracker output row
that is NaN counts as a miss.

Overall figures are the mean of the per-sequence curves, each sequence weighing the same, as in the
OTB / UAV123 toolkits and pysot's report (not a pooled mean over all frames).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence as SequenceType

import numpy as np

from siam_tracking_ros.core import boxes

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLDS = np.linspace(0.0, 50.0, 51)
NORM_PRECISION_THRESHOLDS = np.linspace(0.0, 0.5, 51)
PRECISION_REPORT_PX = 20
NORM_PRECISION_REPORT = 0.2


@dataclass(frozen=True, eq=False)
class Score:
    """Success / precision / normalised-precision curves of one sequence or of a set of them."""

    success: np.ndarray
    precision: np.ndarray
    norm_precision: np.ndarray
    frames: int  # frames that were scored (ground truth present)

    @property
    def auc(self) -> float:
        return float(np.mean(self.success))

    @property
    def precision_at_20(self) -> float:
        return _curve_at(self.precision, PRECISION_THRESHOLDS, PRECISION_REPORT_PX)

    @property
    def norm_precision_at_02(self) -> float:
        return _curve_at(self.norm_precision, NORM_PRECISION_THRESHOLDS, NORM_PRECISION_REPORT)

    def summary(self) -> dict:
        """The headline figures as plain floats (for JSON / CSV)."""
        return {'auc': self.auc, 'precision_20': self.precision_at_20,
                'norm_precision': self.norm_precision_at_02, 'scored_frames': self.frames}


def _curve_at(curve: np.ndarray, thresholds: np.ndarray, threshold: float) -> float:
    return float(curve[int(np.argmin(np.abs(thresholds - threshold)))])


def visible_mask(ground_truth: np.ndarray) -> np.ndarray:
    """Frames whose ground truth is a real box: finite values and positive width and height."""
    gt = np.asarray(ground_truth, dtype=np.float64)
    return np.all(np.isfinite(gt), axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)


def centre_errors(predicted: np.ndarray, ground_truth: np.ndarray,
                  normalise: bool = False) -> np.ndarray:
    """Row-wise Euclidean distance of box centres (in units of gt width/height if ``normalise``)."""
    offset = (boxes.xywh_to_center_size(predicted)[:, :2]
              - boxes.xywh_to_center_size(ground_truth)[:, :2])
    if normalise:
        # pysot divides both centres by the ground-truth size (plus 1e-16 against zero sizes).
        offset = offset / (ground_truth[:, 2:4] + 1e-16)
    distance = np.linalg.norm(offset, axis=1)
    return np.where(np.isnan(distance), np.inf, distance)


def score_sequence(predicted: np.ndarray, ground_truth: np.ndarray) -> Score:
    """Score one sequence's tracker boxes against its ground truth (same base, ``(N, 4)`` each)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    ground_truth = np.asarray(ground_truth, dtype=np.float64)
    if predicted.ndim != 2 or predicted.shape[1] != 4:
        raise ValueError(f'tracker boxes must have shape (N, 4), got {predicted.shape}')
    if predicted.shape != ground_truth.shape:
        raise ValueError(f'tracker boxes cover {len(predicted)} frames but the ground truth has '
                         f'{len(ground_truth)}')
    visible = visible_mask(ground_truth)
    if not visible.any():
        raise ValueError('the ground truth has no frame with the target present: nothing to score')
    predicted, ground_truth = predicted[visible], ground_truth[visible]
    iou = boxes.iou(predicted, ground_truth)  # continuous-corner IoU as pysot; NaN rows give 0
    error = centre_errors(predicted, ground_truth)
    norm_error = centre_errors(predicted, ground_truth, normalise=True)
    return Score(
        success=np.mean(iou[:, None] > SUCCESS_THRESHOLDS[None, :], axis=0),
        precision=np.mean(error[:, None] <= PRECISION_THRESHOLDS[None, :], axis=0),
        norm_precision=np.mean(norm_error[:, None] <= NORM_PRECISION_THRESHOLDS[None, :], axis=0),
        frames=int(visible.sum()),
    )


def mean_score(scores: SequenceType[Score]) -> Score:
    """Overall score: per-sequence curves averaged with equal weight (OTB / UAV123 / pysot)."""
    if not scores:
        raise ValueError('no sequence scores to average')
    return Score(
        success=np.mean([s.success for s in scores], axis=0),
        precision=np.mean([s.precision for s in scores], axis=0),
        norm_precision=np.mean([s.norm_precision for s in scores], axis=0),
        frames=int(sum(s.frames for s in scores)),
    )
