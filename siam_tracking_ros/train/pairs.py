"""Choosing which two frames form a training pair, and reading their images.

Sources (a COCO folder, a folder of sequences, a synthetic set) are drawn with equal probability
so that a large still-image set does not drown a handful of real sequences; inside a source a
track is drawn uniformly, then two frames at most ``max_gap`` apart (the same frame twice for a
still image, which augmentation turns into two different views).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from siam_tracking_ros.eval.datasets import read_image
from siam_tracking_ros.train.sources import Track


@dataclass(frozen=True)
class PairSamplingConfig:
    # Largest frame distance between template and search frame (SiamFC / SiamRPN++ use 100).
    max_gap: int = 100
    # Share of pairs whose search frame shows a different object (SiamRPN++ negative pairs).
    negative_pair_probability: float = 0.0


@dataclass(frozen=True)
class FrameRef:
    track: Track
    frame: int

    @property
    def path(self) -> Path:
        return self.track.frame_paths[self.frame]

    @property
    def box(self) -> np.ndarray:
        return self.track.boxes[self.frame]


@dataclass(frozen=True)
class FramePair:
    template: FrameRef
    search: FrameRef
    negative: bool  # the search frame shows another object


class PairSampler:
    """Draws template/search frame pairs from a set of tracks."""

    def __init__(self, tracks: Sequence[Track], config: PairSamplingConfig = PairSamplingConfig()):
        usable = [track for track in tracks if len(track.valid_frames())]
        if not usable:
            raise ValueError('no track has a frame with a valid box: nothing to train on')
        if config.max_gap < 0:
            raise ValueError(f'max_gap must be >= 0, got {config.max_gap}')
        if not 0.0 <= config.negative_pair_probability <= 1.0:
            raise ValueError('negative_pair_probability must lie in [0, 1], got '
                             f'{config.negative_pair_probability}')
        self.config = config
        groups: dict[str, list[Track]] = {}
        for track in usable:
            groups.setdefault(track.source, []).append(track)
        self.groups = [groups[name] for name in sorted(groups)]

    def summary(self) -> dict[str, int]:
        """Tracks per source, for checkpoint metadata."""
        return {group[0].source: len(group) for group in self.groups}

    def sample_track(self, rng: np.random.Generator) -> Track:
        group = self.groups[rng.integers(len(self.groups))]
        return group[rng.integers(len(group))]

    def sample_pair_in_track(self, track: Track, rng: np.random.Generator) -> FramePair:
        valid = track.valid_frames()
        first = int(valid[rng.integers(len(valid))])
        near = valid[np.abs(valid - first) <= self.config.max_gap]
        second = int(near[rng.integers(len(near))])
        return FramePair(FrameRef(track, first), FrameRef(track, second), negative=False)

    def sample(self, rng: np.random.Generator) -> FramePair:
        pair = self.sample_pair_in_track(self.sample_track(rng), rng)
        if rng.random() >= self.config.negative_pair_probability:
            return pair
        other = self.sample_track(rng)
        valid = other.valid_frames()
        search = FrameRef(other, int(valid[rng.integers(len(valid))]))
        return FramePair(pair.template, search, negative=True)


class ImageCache:
    """Decoded frames and their channel means kept in memory up to a byte budget (least recently
    used dropped first).

    Training reads the same few thousand images over and over; decoding JPEG and averaging the
    frame (the crops' padding value) dominate the cost of a pair otherwise.
    """

    def __init__(self, max_bytes: int = 1 << 30):
        self.max_bytes = max_bytes
        self._images: OrderedDict[Path, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._bytes = 0

    def read(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """The BGR uint8 image at ``path`` and its per-channel mean ``(3,)``."""
        entry = self._images.get(path)
        if entry is not None:
            self._images.move_to_end(path)
            return entry
        image = read_image(path)
        entry = (image, np.asarray(cv2.mean(image)[:3], dtype=np.float64))
        self._images[path] = entry
        self._bytes += image.nbytes
        while self._bytes > self.max_bytes and len(self._images) > 1:
            _, (dropped, _) = self._images.popitem(last=False)
            self._bytes -= dropped.nbytes
        return entry
