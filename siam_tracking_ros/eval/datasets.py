"""Readers for tracking datasets stored as frame folders plus a ground-truth text file.

Two layouts are read:

* UAV123 (also DTB70 / UAVDT sequences converted to it): ``data_seq/<seq>/NNNNNN.jpg`` and
  ``anno/<seq>.txt``. A sequence with several targets has a folder of ground-truth files
  instead, one per target: ``anno/<seq>/<target>.txt``; each target is read as a sequence of its
  own named ``<seq>/<target>`` on the frames of ``data_seq/<seq>`` (naming ``<seq>`` selects all
  its targets). Single- and multi-target sequences may sit side by side.
* A plain folder per sequence (OTB / VOT style): ``<seq>/img/*.jpg`` or ``<seq>/*.jpg`` beside
  ``<seq>/groundtruth.txt``. A folder that itself holds ``groundtruth.txt`` is read as a dataset of
  that one sequence.

Ground truth is kept exactly as published: an ``(N, 4)`` float array of ``x, y, w, h`` boxes,
**1-based**, one row per frame (frame ``i`` of the folder is line ``i``), with ``NaN`` rows where
the target is absent. Values may be separated by commas, tabs or spaces.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence as SequenceType

import cv2
import numpy as np

FRAME_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')
GROUND_TRUTH_FILE = 'groundtruth.txt'
# Between a multi-target sequence's name and its target's: '<seq>/<target>'.
TARGET_SEPARATOR = '/'
_SEPARATORS = re.compile(r'[,\t ]+')


class DatasetError(ValueError):
    """A dataset folder or file does not have the expected layout or content."""


def read_ground_truth(path: Path) -> np.ndarray:
    """Read a ground-truth file into an ``(N, 4)`` float array (boxes as written, NaN kept)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f'ground-truth file not found: {path}')
    rows = []
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        fields = _SEPARATORS.split(line)
        if len(fields) != 4:
            raise DatasetError(
                f'{path}:{line_number}: expected 4 values x,y,w,h, found {len(fields)}: {line!r}')
        try:
            rows.append([float(field) for field in fields])
        except ValueError:
            raise DatasetError(f'{path}:{line_number}: not a number in {line!r}') from None
    if not rows:
        raise DatasetError(f'ground-truth file is empty: {path}')
    return np.asarray(rows, dtype=np.float64)


def list_frames(folder: Path) -> tuple[Path, ...]:
    """The image files of a frame folder, in name order (zero-padded names sort as frame order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f'frame folder not found: {folder}')
    frames = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES))
    if not frames:
        raise DatasetError(f'no image files ({", ".join(FRAME_SUFFIXES)}) in {folder}')
    return frames


def read_image(path: Path) -> np.ndarray:
    """Read one image as BGR uint8 ``H x W x 3`` (grey images are expanded to three channels)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f'cannot read image file (missing or not a decodable image): {path}')
    return image


@dataclass(frozen=True, eq=False)
class Sequence:
    """One annotated sequence: frame files and their 1-based ground truth (NaN = target absent)."""

    name: str
    frame_paths: tuple[Path, ...]
    ground_truth: np.ndarray
    ground_truth_path: Path | None = None

    def __post_init__(self):
        gt = np.asarray(self.ground_truth, dtype=np.float64)
        if gt.ndim != 2 or gt.shape[1] != 4:
            raise DatasetError(f'sequence {self.name}: ground truth must have shape (N, 4), '
                               f'got {gt.shape}')
        source = self.ground_truth_path or 'ground truth'
        if len(gt) < len(self.frame_paths):
            raise DatasetError(f'sequence {self.name}: {source} has {len(gt)} lines but the '
                               f'sequence has {len(self.frame_paths)} frames')
        if len(gt) > len(self.frame_paths):
            raise DatasetError(f'sequence {self.name}: {source} has {len(gt)} lines but only '
                               f'{len(self.frame_paths)} frames were found')
        object.__setattr__(self, 'ground_truth', gt)

    def __len__(self) -> int:
        return len(self.frame_paths)

    def read_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (0-based position in the sequence) as BGR uint8."""
        return read_image(self.frame_paths[index])

    def frames(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self.read_frame(index)

    def head(self, max_frames: int) -> Sequence:
        """The first ``max_frames`` frames of this sequence (the whole sequence if shorter)."""
        if max_frames < 2:
            raise ValueError(f'max_frames must be at least 2 (one to initialise, one to track), '
                             f'got {max_frames}')
        return Sequence(self.name, self.frame_paths[:max_frames],
                        self.ground_truth[:max_frames], self.ground_truth_path)


@dataclass(frozen=True, eq=False)
class Dataset:
    """An ordered collection of sequences addressable by name."""

    name: str
    sequences: tuple[Sequence, ...]

    def __iter__(self) -> Iterator[Sequence]:
        return iter(self.sequences)

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def names(self) -> list[str]:
        return [sequence.name for sequence in self.sequences]

    def __getitem__(self, name: str) -> Sequence:
        for sequence in self.sequences:
            if sequence.name == name:
                return sequence
        raise KeyError(_unknown_names_message(self.name, [name], self.names))

    def select(self, names: Iterable[str]) -> Dataset:
        """A dataset of the named sequences, in the order given."""
        names = list(names)
        missing = [name for name in names if name not in self.names]
        if missing:
            raise KeyError(_unknown_names_message(self.name, missing, self.names))
        return Dataset(self.name, tuple(self[name] for name in names))

    def truncated(self, max_frames: int | None) -> Dataset:
        """Every sequence cut to its first ``max_frames`` frames (unchanged when None)."""
        if max_frames is None:
            return self
        return Dataset(self.name, tuple(seq.head(max_frames) for seq in self.sequences))


def _unknown_names_message(dataset_name: str, unknown: SequenceType[str],
                           known: SequenceType[str]) -> str:
    return (f'no sequence named {", ".join(unknown)} in dataset {dataset_name}; '
            f'available: {", ".join(known)}')


def _check_wanted_names(dataset_name: str, wanted: SequenceType[str] | None,
                        available: SequenceType[str]) -> list[str]:
    if wanted is None:
        return list(available)
    missing = [name for name in wanted if name not in available]
    if missing:
        raise KeyError(_unknown_names_message(dataset_name, missing, available))
    return list(wanted)


def is_uav123_layout(root: Path) -> bool:
    return (root / 'anno').is_dir() and (root / 'data_seq').is_dir()


def load_uav123(root: Path, names: SequenceType[str] | None = None) -> Dataset:
    """Read a UAV123-layout dataset; only the sequences in ``names`` (all when None) are opened.

    A multi-target sequence ``<seq>`` gives one sequence ``<seq>/<target>`` per file of
    ``anno/<seq>/``; ``names`` may name a whole multi-target sequence or single targets."""
    root = Path(root)
    if not is_uav123_layout(root):
        raise DatasetError(f'{root} is not a UAV123-layout dataset (needs anno/ and data_seq/)')
    annotations = uav123_annotations(root / 'anno')
    if not annotations:
        raise DatasetError(f'no annotation files (*.txt, or <seq>/*.txt) in {root / "anno"}')
    available = list(annotations)
    sequences = []
    for name in _check_wanted_names(root.name, _with_targets(names, available), available):
        frames = list_frames(root / 'data_seq' / name.split(TARGET_SEPARATOR)[0])
        sequences.append(Sequence(name, frames, read_ground_truth(annotations[name]),
                                  annotations[name]))
    return Dataset(root.name, tuple(sequences))


def uav123_annotations(anno: Path) -> dict[str, Path]:
    """Ground-truth files by sequence name, sorted: ``anno/<seq>.txt`` as ``<seq>`` and each
    ``anno/<seq>/<target>.txt`` of a multi-target sequence as ``<seq>/<target>``."""
    found = {path.stem: path for path in anno.glob('*.txt')}
    for folder in (path for path in anno.iterdir() if path.is_dir()):
        found.update({f'{folder.name}{TARGET_SEPARATOR}{path.stem}': path
                      for path in folder.glob('*.txt')})
    return dict(sorted(found.items()))


def _with_targets(names: SequenceType[str] | None,
                  available: SequenceType[str]) -> list[str] | None:
    """``names`` with each multi-target sequence name replaced by its targets' names."""
    if names is None:
        return None
    expanded = []
    for name in names:
        targets = [other for other in available if other.startswith(name + TARGET_SEPARATOR)]
        expanded += targets if name not in available and targets else [name]
    return expanded


def _folder_sequence(folder: Path) -> Sequence:
    """One plain-layout sequence: frames in ``img/`` when it exists, else beside groundtruth.txt."""
    frame_folder = folder / 'img' if (folder / 'img').is_dir() else folder
    gt_path = folder / GROUND_TRUTH_FILE
    return Sequence(folder.name, list_frames(frame_folder), read_ground_truth(gt_path), gt_path)


def load_folder_dataset(root: Path, names: SequenceType[str] | None = None) -> Dataset:
    """Read ``<root>/<seq>/groundtruth.txt`` sequences (or ``root`` itself as one sequence)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f'dataset folder not found: {root}')
    if (root / GROUND_TRUTH_FILE).is_file():
        folders = {root.name: root}
    else:
        folders = {p.name: p for p in sorted(root.iterdir())
                   if p.is_dir() and (p / GROUND_TRUTH_FILE).is_file()}
    if not folders:
        raise DatasetError(f'no sequence folders with {GROUND_TRUTH_FILE} in {root}')
    wanted = _check_wanted_names(root.name, names, list(folders))
    return Dataset(root.name, tuple(_folder_sequence(folders[name]) for name in wanted))


def open_dataset(root: Path, names: SequenceType[str] | None = None) -> Dataset:
    """Open a dataset folder of either layout, detected from its content."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f'dataset folder not found: {root}')
    if is_uav123_layout(root):
        return load_uav123(root, names)
    return load_folder_dataset(root, names)
