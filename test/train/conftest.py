"""Tiny training data made on the fly: a COCO still-image folder and an OTB-style sequence."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

IMAGE_SIZE = (160, 200)  # H, W


def textured_frame(rng: np.random.Generator) -> np.ndarray:
    noise = rng.integers(60, 120, size=(*IMAGE_SIZE, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (5, 5), 0)


def draw_target(frame: np.ndarray, x: int, y: int, w: int, h: int) -> None:
    frame[y:y + h, x:x + w] = (30, 200, 240)
    frame[y + h // 3:y + 2 * h // 3, x:x + w] = (200, 40, 40)


@pytest.fixture
def coco_folder(tmp_path: Path) -> Path:
    """Two images, one usable box each, plus a DontCare box and a too-small box to be skipped."""
    folder = tmp_path / 'stills'
    (folder / 'images').mkdir(parents=True)
    rng = np.random.default_rng(0)
    annotations = []
    for image_id in (1, 2):
        frame = textured_frame(rng)
        draw_target(frame, 60, 50, 40, 30)
        cv2.imwrite(str(folder / 'images' / f'{image_id}.png'), frame)
        annotations += [
            {'id': 10 * image_id, 'image_id': image_id, 'category_id': 1,
             'bbox': [60, 50, 40, 30], 'iscrowd': 0},
            {'id': 10 * image_id + 1, 'image_id': image_id, 'category_id': 4,
             'bbox': [10, 10, 30, 30], 'iscrowd': 0},
            {'id': 10 * image_id + 2, 'image_id': image_id, 'category_id': 1,
             'bbox': [150, 100, 3, 3], 'iscrowd': 0},
        ]
    document = {
        'images': [{'id': i, 'file_name': f'{i}.png', 'width': IMAGE_SIZE[1],
                    'height': IMAGE_SIZE[0]} for i in (1, 2)],
        'annotations': annotations,
        'categories': [{'id': 1, 'name': 'Car'}, {'id': 4, 'name': 'DontCare'}],
    }
    (folder / 'annotations.json').write_text(json.dumps(document))
    return folder


@pytest.fixture
def sequence_folder(tmp_path: Path) -> Path:
    """An OTB-style sequence of 6 frames: img/ + 1-based groundtruth.txt."""
    folder = tmp_path / 'sequences' / 'moving'
    (folder / 'img').mkdir(parents=True)
    rng = np.random.default_rng(1)
    lines = []
    for index in range(6):
        frame = textured_frame(rng)
        x, y = 40 + 8 * index, 50 + 3 * index
        draw_target(frame, x, y, 36, 28)
        cv2.imwrite(str(folder / 'img' / f'{index + 1:06d}.jpg'), frame)
        lines.append(f'{x + 1},{y + 1},36,28')
    (folder / 'groundtruth.txt').write_text('\n'.join(lines) + '\n')
    return folder
