"""Shared fixtures of the bag tests: a tiny plain-layout sequence written on the fly and the
location of the shared development data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
UAV_DEV = REPO_ROOT / '..' / 'shared' / 'uav_dev'


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


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """A dataset folder with one 6-frame 320x240 sequence 'square' (frame 4 has no box)."""
    root = tmp_path / 'dataset'
    write_plain_sequence(root, 'square', 6, nan_frames=(3,))
    return root


@pytest.fixture
def uav_dev() -> Path:
    if not UAV_DEV.is_dir():
        pytest.skip(f'the shared development set is not at {UAV_DEV.resolve()} (only present on '
                    'the project machines)')
    return UAV_DEV
