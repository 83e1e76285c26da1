"""Tiny plain-layout sequences written on the fly for the bag tests (imported by their modules
and by conftest.py; a module of its own, since several test folders have a conftest)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def draw_frames(count: int, size=(240, 320), nan_frames=()):
    """Frames with a bright square moving 3 px right and 2 px down per frame over a textured
    background, and the square's 1-based ground truth (NaN rows for ``nan_frames``)."""
    rng = np.random.default_rng(7)
    background = rng.integers(0, 120, size=(*size, 3), dtype=np.uint8)
    frames, truth = [], []
    for index in range(count):
        image = background.copy()
        x, y = 100 + 3 * index, 80 + 2 * index
        cv2.rectangle(image, (x, y), (x + 39, y + 29), (40, 200, 250), thickness=-1)
        frames.append(image)
        truth.append([np.nan] * 4 if index in nan_frames else [x + 1, y + 1, 40, 30])
    return frames, np.array(truth, dtype=np.float64)


def write_plain_sequence(root: Path, name: str, count: int, suffix: str = '.jpg',
                         nan_frames=(), truth_lines: int | None = None) -> Path:
    """A ``<root>/<name>/img/NNNNNN<suffix>`` + ``groundtruth.txt`` sequence folder."""
    folder = root / name
    (folder / 'img').mkdir(parents=True)
    frames, truth = draw_frames(count, nan_frames=nan_frames)
    for index, image in enumerate(frames, start=1):
        assert cv2.imwrite(str(folder / 'img' / f'{index:06d}{suffix}'), image)
    lines = [','.join('NaN' if np.isnan(v) else f'{v:g}' for v in row) for row in truth]
    (folder / 'groundtruth.txt').write_text('\n'.join(lines[:truth_lines]) + '\n')
    return folder
