"""Tracking sequences (frames + ground truth) to rosbag2 files.

One bag per sequence: the frames as ``sensor_msgs/Image`` (bgr8) or ``sensor_msgs/CompressedImage``
(jpeg) spaced ``1/fps`` apart, and the ground truth as ``vision_msgs/Detection2DArray`` on its own
topic with the same stamps (an empty array where the annotation is NaN). The bags are rosbag2
metadata version 8, the version ROS 2 Jazzy's rosbag2 writes, in mcap or sqlite3 storage.

A multi-target sequence (``anno/<seq>/<target>.txt``, read by the dataset as one sequence
``<seq>/<target>`` per target) becomes one bag ``<seq>`` holding all its targets: each
ground-truth array has one detection per target with a box on that frame (``Detection2D.id`` =
the target id, the ground-truth file's stem), and the bag's ``custom_data`` lists the target ids
(:data:`META_TARGETS`), so that a target absent from a frame is still known to the bag.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from siam_tracking_ros.bag import messages
from siam_tracking_ros.core import boxes
from siam_tracking_ros.eval import datasets
from siam_tracking_ros.bag.typestore import (COMPRESSED_IMAGE_TYPE, DETECTIONS_TYPE, IMAGE_TYPE,
                                             project_typestore)

# rosbag2 metadata version written by ROS 2 Jazzy.
JAZZY_BAG_VERSION = 8
STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
IMAGE_FORMATS = ('raw', 'jpeg')
JPEG_SUFFIXES = ('.jpg', '.jpeg')

# Keys of the bag's custom_data that the replay and score steps read back.
META_SEQUENCE = 'siam_tracking_ros.sequence'
META_FPS = 'siam_tracking_ros.fps'
META_IMAGE_TOPIC = 'siam_tracking_ros.image_topic'
META_GROUND_TRUTH_TOPIC = 'siam_tracking_ros.ground_truth_topic'
# JSON list of the target ids of a multi-target bag (absent from single-target bags).
META_TARGETS = 'siam_tracking_ros.targets'

# Offered QoS recorded for every topic: reliable publishers reach reliable and best-effort
# subscribers alike when the bag is played back with `ros2 bag play`.
_UNSET_DURATION = QosTime(sec=0, nsec=0)
RELIABLE_QOS = Qos(history=QosHistory.KEEP_LAST, depth=10, reliability=QosReliability.RELIABLE,
                   durability=QosDurability.VOLATILE, deadline=_UNSET_DURATION,
                   lifespan=_UNSET_DURATION, liveliness=QosLiveliness.AUTOMATIC,
                   liveliness_lease_duration=_UNSET_DURATION,
                   avoid_ros_namespace_conventions=False)


class ConversionError(ValueError):
    """A sequence that cannot be written as a bag (bad options, inconsistent data)."""


@dataclass(frozen=True)
class ConvertOptions:
    fps: float = 30.0
    storage: str = 'mcap'
    image_format: str = 'raw'
    jpeg_quality: int = 95
    ground_truth_topic: str = '/ground_truth'
    frame_id: str = 'camera'
    # Stamp of the first frame; None stamps the bag from the wall clock at conversion.
    start_ns: int | None = None
    overwrite: bool = False

    def __post_init__(self):
        if not self.fps > 0:
            raise ConversionError(f'fps must be positive, got {self.fps}')
        if self.storage not in STORAGES:
            raise ConversionError(f"storage must be one of {', '.join(STORAGES)}, got '{self.storage}'")
        if self.image_format not in IMAGE_FORMATS:
            raise ConversionError(
                f"image format must be one of {', '.join(IMAGE_FORMATS)}, got '{self.image_format}'")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConversionError(f'JPEG quality must lie in 1..100, got {self.jpeg_quality}')

    @property
    def image_topic(self) -> str:
        # image_transport's naming: the compressed stream of /image is /image/compressed.
        return '/image' if self.image_format == 'raw' else '/image/compressed'

    def frame_stamps(self, count: int, start_ns: int) -> list[int]:
        period_ns = 1e9 / self.fps
        return [start_ns + int(round(index * period_ns)) for index in range(count)]


def _jpeg_bytes(frame_path: Path, quality: int) -> bytes:
    """JPEG files pass through untouched, so the bag decodes to the very pixels of the file."""
    if frame_path.suffix.lower() in JPEG_SUFFIXES:
        data = frame_path.read_bytes()
        if not data.startswith(b'\xff\xd8'):
            raise ConversionError(f'{frame_path} is not a JPEG file')
        return data
    return messages.encode_jpeg(datasets.read_image(frame_path), quality)


def _frame_message(store, frame_path: Path, stamp_ns: int, options: ConvertOptions):
    if options.image_format == 'jpeg':
        return messages.compressed_image_message(
            store, _jpeg_bytes(Path(frame_path), options.jpeg_quality), stamp_ns, options.frame_id)
    return messages.raw_image_message(store, datasets.read_image(frame_path), stamp_ns,
                                      options.frame_id)


def _prepare_destination(bag_path: Path, overwrite: bool) -> None:
    if not bag_path.exists():
        bag_path.parent.mkdir(parents=True, exist_ok=True)
        return
    if not overwrite:
        raise ConversionError(f'{bag_path} exists already (use --overwrite to replace it)')
    if not (bag_path / 'metadata.yaml').is_file():
        raise ConversionError(f'{bag_path} exists and is not a rosbag2 folder; not replacing it')
    shutil.rmtree(bag_path)


@dataclass(frozen=True, eq=False)
class BagSequence:
    """What one bag holds: a single-target sequence, or the targets of a multi-target one
    (dataset sequences ``<seq>/<target>`` on the same frames)."""

    name: str
    sequences: tuple[datasets.Sequence, ...]

    @property
    def multi_target(self) -> bool:
        return any(datasets.TARGET_SEPARATOR in sequence.name for sequence in self.sequences)

    @property
    def target_ids(self) -> tuple[str, ...]:
        """The targets' ids (their ground-truth files' stems); empty for a single target."""
        if not self.multi_target:
            return ()
        return tuple(sequence.name.partition(datasets.TARGET_SEPARATOR)[2]
                     for sequence in self.sequences)

    @property
    def frame_count(self) -> int:
        return len(self.sequences[0])


def bag_sequences(dataset: datasets.Dataset) -> dict[str, BagSequence]:
    """The dataset's sequences by bag: each ``<seq>/<target>`` of a multi-target sequence
    joins the bag ``<seq>``, a single-target sequence is a bag of its own."""
    grouped: dict[str, list[datasets.Sequence]] = {}
    for sequence in dataset:
        grouped.setdefault(sequence.name.partition(datasets.TARGET_SEPARATOR)[0],
                           []).append(sequence)
    bags = {name: BagSequence(name, tuple(sequences)) for name, sequences in grouped.items()}
    for bag in bags.values():
        if bag.multi_target and any(sequence.name == bag.name for sequence in bag.sequences):
            raise ConversionError(
                f'sequence {bag.name} has a single-target annotation beside the targets '
                f'{", ".join(s.name for s in bag.sequences if s.name != bag.name)}; one bag '
                'cannot hold both: remove one of them or convert them separately')
    return bags


def write_sequence_bag(sequence: datasets.Sequence, bag_path: Path, options: ConvertOptions,
                       progress=None) -> Path:
    """Write one dataset sequence (1-based ground truth) as a rosbag2 folder at ``bag_path``.

    ``progress`` (optional) is called with the number of frames written so far.
    """
    ground_truth = boxes.one_based_to_zero_based(sequence.ground_truth)
    return _write_bag(sequence.name, sequence.frame_paths, bag_path, options,
                      lambda store, index, stamp_ns: messages.detection_array_message(
                          store, ground_truth[index], stamp_ns, options.frame_id,
                          target_id=sequence.name), progress=progress)


def write_targets_bag(bag: BagSequence, bag_path: Path, options: ConvertOptions,
                      progress=None) -> Path:
    """Write the targets of a multi-target sequence as one rosbag2 folder at ``bag_path``."""
    truths = {target_id: boxes.one_based_to_zero_based(sequence.ground_truth)
              for target_id, sequence in zip(bag.target_ids, bag.sequences)}
    return _write_bag(bag.name, bag.sequences[0].frame_paths, bag_path, options,
                      lambda store, index, stamp_ns: messages.targets_array_message(
                          store, {target_id: truth[index] for target_id, truth in truths.items()},
                          stamp_ns, options.frame_id), bag.target_ids, progress)


def write_bag(bag: BagSequence, bag_path: Path, options: ConvertOptions, progress=None) -> Path:
    if bag.multi_target:
        return write_targets_bag(bag, bag_path, options, progress)
    return write_sequence_bag(bag.sequences[0], bag_path, options, progress)


def _write_bag(name: str, frame_paths, bag_path: Path, options: ConvertOptions,
               truth_message, target_ids: tuple[str, ...] = (), progress=None) -> Path:
    """The frames of ``frame_paths`` and ``truth_message(store, index, stamp_ns)`` for each."""
    store = project_typestore()
    bag_path = Path(bag_path)
    _prepare_destination(bag_path, options.overwrite)
    start_ns = options.start_ns if options.start_ns is not None else time.time_ns()
    stamps = options.frame_stamps(len(frame_paths), start_ns)
    image_type = IMAGE_TYPE if options.image_format == 'raw' else COMPRESSED_IMAGE_TYPE
    writer = Writer(bag_path, version=JAZZY_BAG_VERSION, storage_plugin=STORAGES[options.storage])
    _describe_bag(writer, name, options, target_ids)
    writer.open()
    try:
        image_connection = writer.add_connection(options.image_topic, image_type, typestore=store,
                                                 offered_qos_profiles=[RELIABLE_QOS])
        truth_connection = writer.add_connection(options.ground_truth_topic, DETECTIONS_TYPE,
                                                 typestore=store,
                                                 offered_qos_profiles=[RELIABLE_QOS])
        for index, (frame_path, stamp_ns) in enumerate(zip(frame_paths, stamps)):
            image = _frame_message(store, frame_path, stamp_ns, options)
            writer.write(image_connection, stamp_ns, store.serialize_cdr(image, image_type))
            truth = truth_message(store, index, stamp_ns)
            writer.write(truth_connection, stamp_ns, store.serialize_cdr(truth, DETECTIONS_TYPE))
            if progress is not None:
                progress(index + 1)
    except BaseException:
        writer.abort()
        shutil.rmtree(bag_path, ignore_errors=True)
        raise
    writer.close()
    return bag_path


def _describe_bag(writer: Writer, name: str, options: ConvertOptions,
                  target_ids: tuple[str, ...]) -> None:
    writer.set_custom_data(META_SEQUENCE, name)
    writer.set_custom_data(META_FPS, repr(float(options.fps)))
    writer.set_custom_data(META_IMAGE_TOPIC, options.image_topic)
    writer.set_custom_data(META_GROUND_TRUTH_TOPIC, options.ground_truth_topic)
    if target_ids:
        writer.set_custom_data(META_TARGETS, json.dumps(list(target_ids)))


def convert_dataset(dataset_root: Path, out_dir: Path, options: ConvertOptions,
                    names: list[str] | None = None, max_frames: int | None = None,
                    report=print) -> list[Path]:
    """Convert every (or each named) sequence of a dataset folder to ``out_dir/<sequence>``
    (the targets of a multi-target sequence to one bag, :func:`bag_sequences`)."""
    dataset = datasets.open_dataset(Path(dataset_root), names).truncated(max_frames)
    written = []
    for bag in bag_sequences(dataset).values():
        bag_path = Path(out_dir) / bag.name
        write_bag(bag, bag_path, options)
        targets = f', {len(bag.target_ids)} targets' if bag.multi_target else ''
        report(f'{bag.name}: {bag.frame_count} frames{targets} -> {bag_path} '
               f'({options.storage}, {options.image_format}, {options.fps:g} fps)')
        written.append(bag_path)
    return written
