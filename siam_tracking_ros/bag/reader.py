"""Reading the bags written by :mod:`siam_tracking_ros.bag.convert` (or any rosbag2 with an image
topic and, for scoring, a Detection2DArray ground-truth topic)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError

from siam_tracking_ros.bag import convert, messages
from siam_tracking_ros.bag.typestore import DETECTIONS_TYPE, IMAGE_TYPES, project_typestore


class BagError(ValueError):
    """A bag that is missing, unreadable, or lacks what a step needs."""


@dataclass(frozen=True)
class BagFrame:
    """One image message of a bag, still serialized (CDR)."""

    index: int
    stamp_ns: int
    msgtype: str
    data: bytes


@dataclass(frozen=True)
class BagInfo:
    path: Path
    sequence: str
    image_topic: str
    image_type: str
    frame_stamps: tuple[int, ...]
    ground_truth_topic: str | None
    fps: float
    # Target ids of a multi-target bag (convert.META_TARGETS); empty for a single target.
    targets: tuple[str, ...] = ()

    @property
    def frame_count(self) -> int:
        return len(self.frame_stamps)


def open_reader(path: Path) -> Reader:
    """An opened rosbags Reader, with rosbags' and OS errors turned into a BagError."""
    path = Path(path)
    if not path.exists():
        raise BagError(f'bag {path} does not exist')
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, OSError, KeyError, ValueError) as error:
        raise BagError(f'cannot read bag {path}: {error}') from error
    return reader


def bag_custom_data(path: Path) -> dict:
    """The ``custom_data`` map of a bag folder's metadata.yaml (empty for a bare storage file)."""
    metadata_path = Path(path) / 'metadata.yaml'
    if not metadata_path.is_file():
        return {}
    try:
        document = yaml.safe_load(metadata_path.read_text(encoding='utf-8')) or {}
    except yaml.YAMLError as error:
        raise BagError(f'bag {path} has an unreadable metadata.yaml: {error}') from error
    information = document.get('rosbag2_bagfile_information') if isinstance(document, dict) else None
    if not isinstance(information, dict):
        raise BagError(f'bag {path}: metadata.yaml has no rosbag2_bagfile_information')
    return dict(information.get('custom_data') or {})


def _pick_topic(reader: Reader, wanted: str | None, types: tuple[str, ...], what: str,
                path: Path) -> str | None:
    candidates = {c.topic: c.msgtype for c in reader.connections if c.msgtype in types}
    if wanted is not None:
        if wanted not in candidates:
            present = ', '.join(f'{c.topic} ({c.msgtype})' for c in reader.connections) or 'none'
            raise BagError(f"bag {path} has no {what} topic '{wanted}' (topics: {present})")
        return wanted
    if len(candidates) > 1:
        raise BagError(f'bag {path} has several {what} topics ({", ".join(sorted(candidates))}); '
                       'name one')
    return next(iter(candidates), None)


def _stamps_on(reader: Reader, topic: str) -> list[int]:
    connections = [c for c in reader.connections if c.topic == topic]
    return [stamp for _, stamp, _ in reader.messages(connections=connections)]


def bag_info(path: Path, image_topic: str | None = None) -> BagInfo:
    """The sequence a bag holds: its image topic, frame stamps, ground-truth topic and rate."""
    path = Path(path)
    reader = open_reader(path)
    try:
        custom = bag_custom_data(path)
        image_topic = image_topic or custom.get(convert.META_IMAGE_TOPIC)
        topic = _pick_topic(reader, image_topic, IMAGE_TYPES, 'image', path)
        if topic is None:
            present = ', '.join(f'{c.topic} ({c.msgtype})' for c in reader.connections) or 'none'
            raise BagError(f'bag {path} has no sensor_msgs/Image or CompressedImage topic '
                           f'(topics: {present})')
        image_type = next(c.msgtype for c in reader.connections if c.topic == topic)
        truth_topic = _pick_topic(reader, custom.get(convert.META_GROUND_TRUTH_TOPIC),
                                  (DETECTIONS_TYPE,), 'ground-truth', path)
        stamps = _read_checked(lambda: _stamps_on(reader, topic), path)
    finally:
        reader.close()
    if not stamps:
        raise BagError(f"bag {path} has no messages on its image topic '{topic}'")
    return BagInfo(path=path, sequence=custom.get(convert.META_SEQUENCE) or path.name,
                   image_topic=topic, image_type=image_type, frame_stamps=tuple(stamps),
                   ground_truth_topic=truth_topic,
                   fps=float(custom.get(convert.META_FPS) or _rate_from_stamps(stamps)),
                   targets=_target_ids(custom, path))


def _target_ids(custom: dict, path: Path) -> tuple[str, ...]:
    text = custom.get(convert.META_TARGETS)
    if not text:
        return ()
    try:
        ids = json.loads(text)
    except ValueError:
        ids = None
    if not (isinstance(ids, list) and ids and all(isinstance(i, str) and i for i in ids)
            and len(set(ids)) == len(ids)):
        raise BagError(f'bag {path}: custom_data {convert.META_TARGETS} must be a JSON list of '
                       f'distinct non-empty target ids, got {text!r}')
    return tuple(ids)


def _rate_from_stamps(stamps: list[int]) -> float:
    if len(stamps) < 2:
        return 30.0
    period_ns = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    if period_ns <= 0:
        raise BagError('the image stamps of the bag do not increase')
    return 1e9 / period_ns


def _read_checked(read, path: Path):
    """Run a read over the bag's messages; storage-level corruption becomes a BagError."""
    try:
        return read()
    except (ReaderError, OSError, ValueError, KeyError, EOFError) as error:
        raise BagError(f'bag {path} is corrupt or truncated: {error}') from error
    except Exception as error:  # the mcap and sqlite3 layers raise their own error types
        if type(error).__module__.startswith(('rosbags', 'sqlite3', 'zstandard', 'lz4')):
            raise BagError(f'bag {path} is corrupt or truncated: {error}') from error
        raise


def iter_frames(info: BagInfo):
    """Yield the bag's image messages in stamp order as :class:`BagFrame` (serialized)."""
    reader = open_reader(info.path)
    try:
        connections = [c for c in reader.connections if c.topic == info.image_topic]
        messages_iter = reader.messages(connections=connections)
        index = 0
        while True:
            item = _read_checked(lambda: next(messages_iter, None), info.path)
            if item is None:
                return
            connection, stamp, data = item
            yield BagFrame(index=index, stamp_ns=stamp, msgtype=connection.msgtype,
                           data=bytes(data))
            index += 1
    finally:
        reader.close()


def _ground_truth_messages(info: BagInfo) -> list:
    """The ground-truth Detection2DArray of each of the bag's frames, in frame order."""
    if info.ground_truth_topic is None:
        raise BagError(f'bag {info.path} has no vision_msgs/Detection2DArray ground-truth topic')
    store = project_typestore()
    reader = open_reader(info.path)
    try:
        connections = [c for c in reader.connections if c.topic == info.ground_truth_topic]
        by_stamp = _read_checked(lambda: {
            stamp: store.deserialize_cdr(data, DETECTIONS_TYPE)
            for _, stamp, data in reader.messages(connections=connections)}, info.path)
    finally:
        reader.close()
    missing = [index for index, stamp in enumerate(info.frame_stamps) if stamp not in by_stamp]
    if missing:
        raise BagError(f'bag {info.path}: {len(missing)} frames have no ground-truth message with '
                       f'their stamp (first: frame {missing[0]})')
    return [by_stamp[stamp] for stamp in info.frame_stamps]


def _box_rows(boxes) -> np.ndarray:
    return np.array([box if box is not None else (np.nan,) * 4 for box in boxes],
                    dtype=np.float64)


def read_ground_truth(info: BagInfo) -> np.ndarray:
    """N x 4 0-based boxes aligned with the bag's frames (NaN rows for empty arrays)."""
    return _box_rows(messages.detection_array_box(message)
                     for message in _ground_truth_messages(info))


def read_target_ground_truth(info: BagInfo) -> dict[str, np.ndarray]:
    """Each target's N x 4 0-based boxes of a multi-target bag, by target id (NaN rows where
    a frame's array has no detection with that id)."""
    if not info.targets:
        raise BagError(f'bag {info.path} holds a single target (no {convert.META_TARGETS} in its '
                       'metadata); read its ground truth with read_ground_truth')
    by_frame = [messages.detections_by_target(message)
                for message in _ground_truth_messages(info)]
    return {target_id: _box_rows(
                messages.detection_box(found[target_id]) if target_id in found else None
                for found in by_frame)
            for target_id in info.targets}
