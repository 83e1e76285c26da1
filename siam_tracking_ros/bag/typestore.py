"""The rosbags typestore the bag tools read and write with.

Standard interfaces (sensor_msgs, std_msgs, builtin_interfaces, ...) come from rosbags' Jazzy
store. ``vision_msgs`` (not part of a base ROS install) and this package's own messages are
registered from their ``.msg`` definitions, so the type hashes (RIHS01) written into a bag are the
ones a ROS 2 Jazzy system computes for the same definitions.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE_TYPE = 'sensor_msgs/msg/CompressedImage'
DETECTIONS_TYPE = 'vision_msgs/msg/Detection2DArray'
STATUS_TYPE = 'siam_tracking_ros/msg/TrackerStatus'
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)

REPO_ROOT = Path(__file__).resolve().parents[2]


class InterfaceDefinitionsNotFound(FileNotFoundError):
    """The .msg files of an interface package are neither in the source tree nor installed."""


def _candidate_msg_dirs(package: str, source_dir: Path) -> list[Path]:
    """Where ``package``'s .msg files may live: the source tree first, then installed prefixes."""
    candidates = [source_dir]
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / 'share' / package / 'msg')
    return candidates


def find_msg_dir(package: str, source_dir: Path) -> Path:
    """The first directory holding ``package``'s ``*.msg`` files."""
    candidates = _candidate_msg_dirs(package, source_dir)
    for directory in candidates:
        if directory.is_dir() and any(directory.glob('*.msg')):
            return directory
    searched = ', '.join(str(path) for path in candidates)
    raise InterfaceDefinitionsNotFound(
        f'no .msg definitions of {package} found (searched: {searched})')


def read_msg_types(package: str, msg_dir: Path) -> dict:
    """Parse every ``<msg_dir>/*.msg`` as ``<package>/msg/<stem>`` into a rosbags types dict."""
    types = {}
    for path in sorted(msg_dir.glob('*.msg')):
        types.update(get_types_from_msg(path.read_text(encoding='utf-8'),
                                        f'{package}/msg/{path.stem}'))
    return types


@functools.lru_cache(maxsize=1)
def project_typestore():
    """The Jazzy typestore extended with vision_msgs and siam_tracking_ros messages.

    Built once per process (parsing the definitions is the expensive part) and never
    modified afterwards.
    """
    store = get_typestore(Stores.ROS2_JAZZY)
    vision_dir = find_msg_dir('vision_msgs', REPO_ROOT / 'interfaces' / 'vision_msgs' / 'msg')
    store.register(read_msg_types('vision_msgs', vision_dir))
    own_dir = find_msg_dir('siam_tracking_ros', REPO_ROOT / 'msg')
    store.register(read_msg_types('siam_tracking_ros', own_dir))
    return store
