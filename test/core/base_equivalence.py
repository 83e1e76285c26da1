"""Sequences for "the seed tracker with its addition off is its base, box for box" tests.

``real_frames`` reads the first frames of a development sequence (the caller passes the
``uav_dev`` fixture, which skips when ../shared/uav_dev is absent); ``synthetic_frames`` renders
one of the package's synthetic aerial sequences (``eval.synth``). ``tracked_boxes`` runs a tracker
over such frames and returns every box, so two trackers can be compared exactly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from siam_tracking_ros.core import boxes
from siam_tracking_ros.core.registry import default_config
from siam_tracking_ros.eval.datasets import open_dataset
from siam_tracking_ros.eval.ope import initial_box
from siam_tracking_ros.eval.synth import SynthConfig, generate_sequence

# Twenty frames: enough for the state (centre, size, template, adjusted head) to evolve.
REAL_FRAMES = 20
SYNTH_FRAMES = 20


def uses_resnet50(name: str) -> bool:
    """Whether registered tracker ``name`` runs the ResNet-50 backbone (about ten times an
    AlexNet's cost per crop on one CPU thread, so its tests track fewer frames)."""
    return getattr(default_config(name), 'backbone', None) == 'resnet50'


def real_frames(uav_dev: Path, name: str,
                count: int = REAL_FRAMES) -> tuple[list[np.ndarray], np.ndarray]:
    """The first ``count`` frames of development sequence ``name`` and its 0-based first box."""
    sequence = open_dataset(uav_dev, [name])[name].head(count)
    return [sequence.read_frame(i) for i in range(len(sequence))], initial_box(sequence)


def synthetic_frames(seed: int = 3, count: int = SYNTH_FRAMES,
                     size: tuple[int, int] = (480, 270)) -> tuple[list[np.ndarray], np.ndarray]:
    """A rendered synthetic aerial sequence (distractors, blur, camera motion) and its first box."""
    sequence = generate_sequence(seed, 0, SynthConfig(frames=count, width=size[0],
                                                      height=size[1]))
    return sequence.frames, boxes.one_based_to_zero_based(sequence.ground_truth[0])


def tracked_boxes(tracker, frames: list[np.ndarray], first_box: np.ndarray) -> np.ndarray:
    """``(n, 4)`` boxes: the initial one, then one per tracked frame."""
    tracker.init(frames[0], tuple(float(v) for v in first_box))
    tracked = [np.asarray(first_box, np.float64)]
    tracked += [np.asarray(tracker.track(frame).box, np.float64) for frame in frames[1:]]
    return np.stack(tracked)
