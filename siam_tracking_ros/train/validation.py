"""Model selection on held-out training sequences.

A run given a validation split tracks those sequences (one-pass, from the first frame, the way
``siamtrack eval`` does) with each epoch's weights, records the mean success AUC and
precision@20 in its history, and keeps the epoch that scores best as ``best.pth``. Checkpoints
and hyper-parameters are chosen on this split, never on the evaluation set, which the split
may not come from; nor may it overlap the run's training data, or it would not be held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from siam_tracking_ros.core.registry import build_tracker
from siam_tracking_ros.eval import metrics
from siam_tracking_ros.eval.datasets import Dataset, open_dataset
from siam_tracking_ros.eval.ope import track_sequence
from siam_tracking_ros.train.sources import (SYNTH_PREFIX, TrainingDataError,
                                             ensure_not_evaluation_set)

BEST_CHECKPOINT = 'best.pth'


@dataclass(frozen=True)
class ValidationSplit:
    """Held-out sequences: a dataset folder, the names in it (empty: all), and how many frames
    of each to track (None: all)."""

    folder: Path
    names: tuple[str, ...] = ()
    max_frames: int | None = None

    def __post_init__(self):
        if self.max_frames is not None and self.max_frames < 2:
            raise ValueError(f'validation frames must be at least 2, got {self.max_frames}')

    def open(self, training_data: tuple[str, ...]) -> Dataset:
        """The split's sequences; TrainingDataError when it is (in) the evaluation set or lies
        in the training data."""
        ensure_not_evaluation_set(self.folder)
        dataset = open_dataset(self.folder, list(self.names) or None)
        for sequence in dataset.sequences:
            _check_held_out(sequence.frame_paths[0], sequence.name, training_data)
        return dataset.truncated(self.max_frames)


def _check_held_out(frame_path: Path, name: str, training_data: tuple[str, ...]) -> None:
    frame = Path(frame_path).resolve()
    for spec in training_data:
        if spec.startswith(SYNTH_PREFIX):
            continue
        source = Path(spec).resolve()
        if frame == source or source in frame.parents:
            raise TrainingDataError(
                f"validation sequence '{name}' lies in the training data '{spec}': it would not "
                'be held out (list the training sequences one by one, without it)')


def validate(weights: Path, tracker_name: str, dataset: Dataset, device: torch.device,
             tracker_config: dict | None = None) -> dict:
    """Mean success AUC and precision@20 of ``tracker_name`` with ``weights`` over ``dataset``
    (inference as users run it: the tracker's default precision unless the run overrides it),
    with the per-sequence AUCs."""
    tracker = build_tracker(tracker_name, weights=weights, device=device,
                            **(tracker_config or {}))
    scores = {}
    for sequence in dataset.sequences:
        run = track_sequence(tracker, sequence, tracker.device)
        scores[sequence.name] = metrics.score_sequence(run.boxes, sequence.ground_truth)
    mean = metrics.mean_score(list(scores.values()))
    return {'auc': round(mean.auc, 4), 'precision_20': round(mean.precision_at_20, 4),
            'sequences': {name: round(score.auc, 4) for name, score in scores.items()}}


def best_validation_auc(history: list[dict]) -> float:
    """The best validation AUC among the epochs of ``history`` (-1 when none was validated)."""
    return max((entry['validation']['auc'] for entry in history if 'validation' in entry),
               default=-1.0)
