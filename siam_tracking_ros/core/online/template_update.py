"""DROL robust learning: the short-term template (section 3.4, eqs. (6)-(7), Algorithm 1).

Every T frames the short-term template z_s is re-cut from the recent frame with the highest
online classification score, provided that score reaches tau_c (eq. 6). Each frame the Siamese
subnet matches both z_1 and z_s; the short-term result replaces the first-template result only
when their boxes agree (IoU >= v_r) and z_s scores higher by at least v_c (eq. 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from siam_tracking_ros.core.boxes import iou

Candidate = TypeVar("Candidate")


def adopt_short_term(box_short, score_short: float, box_first, score_first: float,
                     iou_threshold: float, score_gain: float) -> bool:
    """Eq. (7): use the short-term template's result instead of z_1's.

    Boxes are 0-based (x, y, w, h); scores are the Siamese classification scores at each
    template's best location.
    """
    overlap = float(iou(np.asarray(box_short, dtype=np.float64),
                        np.asarray(box_first, dtype=np.float64)))
    return overlap >= iou_threshold and score_short - score_first >= score_gain


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

    def observe(self, frame_index: int, score: float, candidate: Candidate) -> Candidate | None:
        """Record frame `frame_index` (t, 1 for the first tracked frame) with its classifier
        score; returns the candidate to build z_s from when the window closes, else None."""
        if score >= self.score_threshold and (self._best is None or score > self._best.score):
            self._best = _Best(score, candidate)
        if frame_index % self.interval != 0:
            return None
        chosen = None if self._best is None else self._best.candidate
        self._best = None
        return chosen
