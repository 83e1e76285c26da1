"""DROL robust learning: the short-term template (section 3.4, eqs. (6)-(7), Algorithm 1).

Every T frames the short-term template z_s is re-cut from the recent frame with the highest
online classification score, provided that score reaches tau_c (eq. 6) and the frame is not a
hard negative (the authors' code leaves those out: a strong second peak makes the frame a poor
template). Each frame the Siamese subnet matches both z_1 and z_s; the short-term result replaces
the first-template result when their boxes agree (IoU >= v_r) and the short-term prediction
scores higher by at least v_c (eq. 7).

The score of eq. (7) is the adaptive classification score f^_C of eq. (5) at each template's
prediction, with every term on one normalised scale: the two templates' Siamese maps are min-max
normalised together (one common minimum and maximum, so a template that matches better keeps its
higher peak), the frame's online map is min-max normalised to [0, 1] and read at each predicted
centre, and the two are mixed with lambda. The gain is then a difference of numbers in [0, 1]
whose range the gains v_c (0.5; 0.1 for DROL-FC) are meant for. The authors' code compares the
templates' own separately normalised Siamese peaks instead (sum-normalised maps for DROL-FC,
probabilities near 0.9-0.97 for DROL-RPN), where the rule never fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch

from siam_tracking_ros.core.boxes import iou
from siam_tracking_ros.core.online.fusion import min_max_normalise, sample_at_offsets

Candidate = TypeVar("Candidate")


def online_score_gain(online: torch.Tensor, online_stride: float, offset_short,
                      offset_first) -> float:
    """The online part of eq. (7)'s gain: normalised online score at the short-term template's
    predicted centre minus that at the first template's. `online` is the frame's M x M online map; the
    offsets are (dx, dy) crop pixels of each predicted centre from the crop centre."""
    offsets = torch.from_numpy(np.array([offset_short, offset_first], dtype=np.float32))
    scores = sample_at_offsets(min_max_normalise(online.float().cpu()), online_stride, offsets)
    return float(scores[0] - scores[1])


def siamese_score_gain(map_short: torch.Tensor, peak_short: float, map_first: torch.Tensor,
                       peak_first: float) -> float:
    """Difference of the two templates' Siamese peak scores, both min-max normalised with the
    minimum and maximum over both templates' maps."""
    low = float(torch.minimum(map_short.min(), map_first.min()))
    high = float(torch.maximum(map_short.max(), map_first.max()))
    return (peak_short - peak_first) / max(high - low, 1e-12)


def adaptive_score_gain(siamese_gain: float, online_gain: float, weight: float) -> float:
    """Eq. (5) applied to the gains: lambda * online gain + (1 - lambda) * Siamese gain."""
    return weight * online_gain + (1.0 - weight) * siamese_gain


def adopt_short_term(box_short, box_first, score_gain: float, iou_threshold: float,
                     gain_threshold: float) -> bool:
    """Eq. (7): use the short-term template's result instead of z_1's.

    Boxes are 0-based (x, y, w, h); `score_gain` is `adaptive_score_gain` of the two
    predictions.
    """
    overlap = float(iou(np.asarray(box_short, dtype=np.float64),
                        np.asarray(box_first, dtype=np.float64)))
    return overlap >= iou_threshold and score_gain >= gain_threshold


@dataclass(frozen=True)
class _Best(Generic[Candidate]):
    score: float
    candidate: Candidate


class ShortTermTemplateSelector(Generic[Candidate]):
    """Eq. (6) with Algorithm 1's schedule: keep the best-scoring frame of the current window of T
    frames (scores below tau_c do not qualify) and hand it over when t mod T = 0."""

    def __init__(self, interval: int, score_threshold: float):
        if interval < 1:
            raise ValueError(f"template update interval T must be >= 1, got {interval}")
        self.interval = interval
        self.score_threshold = score_threshold
        self._best: _Best[Candidate] | None = None

    def reset(self) -> None:
        self._best = None

    def observe(self, frame_index: int, score: float, candidate: Candidate,
                eligible: bool = True) -> Candidate | None:
        """Record frame `frame_index` (t, 1 for the first tracked frame) with its classifier
        score; `eligible` False (a hard negative) keeps the frame out whatever its score.
        Returns the candidate to build z_s from when the window closes, else None."""
        qualifies = eligible and score >= self.score_threshold
        if qualifies and (self._best is None or score > self._best.score):
            self._best = _Best(score, candidate)
        if frame_index % self.interval != 0:
            return None
        chosen = None if self._best is None else self._best.candidate
        self._best = None
        return chosen
