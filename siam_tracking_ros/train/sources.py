"""Training data sources: sequences and still images with object boxes, read into one form.

Every source becomes a list of :class:`Track` objects. A track is a run of frames showing one
object, with one 0-based ``(x, y, w, h)`` box per frame (NaN where the object is absent). A still
image with a box is a track of one frame: its pairs are two differently augmented crops of the
same frame, the way SiamRPN++ turns detection data into tracking pairs.

Layouts understood (detected from what the folder holds):

* COCO-format still images: ``annotations.json`` + ``images/`` (``bbox`` = 0-based pixels).
* UAV123 layout: ``data_seq/<seq>/*.jpg`` + ``anno/<seq>.txt``.
* plain frame folders (OTB / VOT style): ``img/*.jpg`` + ``groundtruth.txt``, and GOT-10k style
  sequence folders (``*.jpg`` beside ``groundtruth.txt``), one folder or a folder of them.
  Sequences are read with the evaluation readers (``eval.datasets``), which keep boxes 1-based as
  published; they become 0-based here.
* a folder holding any of the above, searched a few levels deep.
* ``synth:N``: N sequences made by the package's synthetic sequence generator.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siam_tracking_ros.core.boxes import one_based_to_zero_based
from siam_tracking_ros.eval.datasets import (GROUND_TRUTH_FILE, Dataset, DatasetError,
                                             is_uav123_layout, open_dataset)

EVALUATION_SET_NAME = 'uav_dev'
SYNTH_PREFIX = 'synth:'
# COCO boxes smaller than this (pixels, either side) carry too little appearance to learn from.
MIN_STILL_BOX_SIDE = 6.0
# HIT-UAV marks regions nobody labelled with this category name.
IGNORED_CATEGORY_NAMES = ('dontcare',)
MAX_SEARCH_DEPTH = 3


@dataclass(frozen=True)
class Track:
    """One object seen in one or more frames."""

    name: str
    frame_paths: tuple[Path, ...]
    boxes: np.ndarray  # (n_frames, 4) float64, 0-based x, y, w, h; NaN where absent
    category: int = -1
    source: str = ''

    @property
    def is_still(self) -> bool:
        return len(self.frame_paths) == 1

    def valid_frames(self) -> np.ndarray:
        """Indices of frames whose box is present and has a positive size."""
        finite = np.all(np.isfinite(self.boxes), axis=1)
        positive = (self.boxes[:, 2] > 0) & (self.boxes[:, 3] > 0)
        return np.flatnonzero(finite & positive)


class TrainingDataError(ValueError):
    """A training data path is unusable (missing, unknown layout, or the evaluation set)."""


def ensure_not_evaluation_set(path: Path) -> None:
    """Refuse the evaluation set: results on it mean nothing once a model has trained on it."""
    parts = {part.lower() for part in Path(path).resolve().parts}
    if EVALUATION_SET_NAME in parts:
        raise TrainingDataError(
            f'{path} lies in the evaluation set "{EVALUATION_SET_NAME}"; it may only be used to '
            'measure trackers, never to train them (use ../shared/train or synth:N instead)')


def _tracks_from_dataset(dataset: Dataset, source: Path) -> list[Track]:
    """Sequences read by the evaluation readers (1-based boxes as published) as tracks."""
    tracks = []
    for sequence in dataset:
        boxes = np.asarray([one_based_to_zero_based(tuple(row)) for row in sequence.ground_truth],
                           dtype=np.float64)
        tracks.append(Track(name=sequence.name, frame_paths=sequence.frame_paths, boxes=boxes,
                            source=str(source)))
    return tracks


def load_sequences(folder: Path) -> list[Track]:
    """A UAV123-layout dataset, a sequence folder, or a folder of sequence folders."""
    try:
        return _tracks_from_dataset(open_dataset(folder), folder)
    except DatasetError as error:
        raise TrainingDataError(f'{folder}: {error}') from error


def load_coco_stills(folder: Path) -> list[Track]:
    """COCO ``annotations.json`` + ``images/``: one one-frame track per usable box."""
    document = json.loads((folder / 'annotations.json').read_text())
    images = {image['id']: image for image in document['images']}
    ignored = {c['id'] for c in document.get('categories', [])
               if str(c.get('name', '')).lower() in IGNORED_CATEGORY_NAMES}
    image_root = folder / 'images' if (folder / 'images').is_dir() else folder
    tracks = []
    for annotation in document['annotations']:
        x, y, w, h = (float(v) for v in annotation['bbox'])
        if annotation.get('iscrowd', 0) or annotation.get('category_id') in ignored:
            continue
        if min(w, h) < MIN_STILL_BOX_SIDE:
            continue
        image = images[annotation['image_id']]
        tracks.append(Track(
            name=f'{folder.name}/{annotation["id"]}',
            frame_paths=(image_root / image['file_name'],),
            boxes=np.asarray([[x, y, w, h]], dtype=np.float64),
            category=int(annotation.get('category_id', -1)),
            source=str(folder)))
    return tracks


def _layout_loader(folder: Path):
    """The loader for the layout ``folder`` holds, or None when it holds none directly."""
    if (folder / 'annotations.json').is_file():
        return load_coco_stills
    if is_uav123_layout(folder) or (folder / GROUND_TRUTH_FILE).is_file():
        return load_sequences
    if any((child / GROUND_TRUTH_FILE).is_file() for child in folder.iterdir() if child.is_dir()):
        return load_sequences
    return None


def discover_tracks(folder: Path, depth: int = MAX_SEARCH_DEPTH) -> list[Track]:
    """All tracks in ``folder``: its own layout, or the layouts of its sub-folders."""
    loader = _layout_loader(folder)
    if loader is not None:
        return loader(folder)
    if depth == 0:
        return []
    tracks = []
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        tracks.extend(discover_tracks(child, depth - 1))
    return tracks


def parse_synth_spec(spec: str) -> int:
    """``synth:N`` -> N."""
    count_text = spec[len(SYNTH_PREFIX):]
    if not count_text.isdigit() or int(count_text) <= 0:
        raise TrainingDataError(f'{spec!r}: write synthetic data as synth:N with N > 0')
    return int(count_text)


def _write_synthetic_sequence(target: Path, seed: int, index: int) -> None:
    from siam_tracking_ros.eval.synth import generate_sequence, write_sequence

    write_sequence(target, generate_sequence(seed, index))


def synthesize_tracks(count: int, cache_dir: Path, seed: int = 0,
                      processes: int | None = None) -> list[Track]:
    """Generate ``count`` synthetic sequences (UAV123 layout, under ``cache_dir``) and read them.

    Sequences already there are kept (a sequence's annotation file is written after its frames,
    so its presence marks a complete sequence); the rest are rendered in parallel processes.
    """
    from siam_tracking_ros.eval.synth import SEQUENCE_NAME

    target = Path(cache_dir) / f'synth_{count}_seed{seed}'
    missing = [index for index in range(count)
               if not (target / 'anno' / f'{SEQUENCE_NAME.format(index=index)}.txt').is_file()]
    workers = min(len(missing), processes or os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_write_synthetic_sequence, [target] * len(missing),
                          [seed] * len(missing), missing))
    else:
        for index in missing:
            _write_synthetic_sequence(target, seed, index)
    return load_sequences(target)


def load_tracks(spec: str, synth_cache: Path) -> list[Track]:
    """Tracks for one ``--data`` entry: a folder path or ``synth:N``."""
    if spec.startswith(SYNTH_PREFIX):
        return synthesize_tracks(parse_synth_spec(spec), synth_cache)
    path = Path(spec)
    ensure_not_evaluation_set(path)
    if not path.is_dir():
        raise TrainingDataError(f'training data folder {path} does not exist')
    tracks = discover_tracks(path)
    if not tracks:
        raise TrainingDataError(
            f'{path}: no training data found (expected COCO annotations.json, UAV123 '
            'anno/+data_seq/, img/+groundtruth.txt or GOT-10k sequence folders)')
    return tracks
