"""rosbags message objects for frames, ground truth and detections, and back.

Boxes here are the tracker API's 0-based ``(x, y, w, h)``; a ``vision_msgs/BoundingBox2D``
carries the centre in continuous pixel coordinates, ``(x + w/2, y + h/2)`` (see
docs/architecture.md). A frame whose box is unknown (NaN ground truth, a lost target) is an
empty ``Detection2DArray``; with several targets an array holds one ``Detection2D`` per target
whose box is known, its ``id`` the target's id.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from siam_tracking_ros.bag.typestore import COMPRESSED_IMAGE_TYPE, DETECTIONS_TYPE, IMAGE_TYPE
from siam_tracking_ros.ros.frames import NANOSECONDS
from siam_tracking_ros.ros.image_codec import (bgr_to_raw_fields, compressed_image_to_bgr,
                                               raw_image_to_bgr)

def stamp_from_ns(store, stamp_ns: int):
    """A ``builtin_interfaces/Time`` for an integer nanosecond stamp."""
    time_type = store.types['builtin_interfaces/msg/Time']
    return time_type(sec=int(stamp_ns // NANOSECONDS), nanosec=int(stamp_ns % NANOSECONDS))


def header(store, stamp_ns: int, frame_id: str):
    header_type = store.types['std_msgs/msg/Header']
    return header_type(stamp=stamp_from_ns(store, stamp_ns), frame_id=frame_id)


def raw_image_message(store, image_bgr: np.ndarray, stamp_ns: int, frame_id: str):
    """A ``sensor_msgs/Image`` (bgr8) holding ``image_bgr``."""
    fields = bgr_to_raw_fields(image_bgr)
    fields['data'] = np.frombuffer(fields['data'], dtype=np.uint8)
    return store.types[IMAGE_TYPE](header=header(store, stamp_ns, frame_id), **fields)


def compressed_image_message(store, jpeg_bytes: bytes, stamp_ns: int, frame_id: str):
    """A ``sensor_msgs/CompressedImage`` holding an already encoded JPEG stream."""
    return store.types[COMPRESSED_IMAGE_TYPE](
        header=header(store, stamp_ns, frame_id), format='jpeg',
        data=np.frombuffer(jpeg_bytes, dtype=np.uint8))


def encode_jpeg(image_bgr: np.ndarray, quality: int) -> bytes:
    ok, encoded = cv2.imencode('.jpg', image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f'OpenCV could not JPEG-encode an image of shape {image_bgr.shape}')
    return encoded.tobytes()


def image_to_bgr(message) -> np.ndarray:
    """Decode a rosbags ``Image`` or ``CompressedImage`` into an H x W x 3 BGR array."""
    if message.__msgtype__ == COMPRESSED_IMAGE_TYPE:
        return compressed_image_to_bgr(message)
    if message.__msgtype__ == IMAGE_TYPE:
        return raw_image_to_bgr(message)
    raise TypeError(f'{message.__msgtype__} is not an image message')


def box_is_known(box) -> bool:
    return box is not None and all(math.isfinite(float(value)) for value in box)


def box_to_center_size(box) -> tuple[float, float, float, float]:
    """0-based ``(x, y, w, h)`` to the ROS centre and size ``(cx, cy, w, h)``."""
    x, y, w, h = (float(value) for value in box)
    return x + w / 2.0, y + h / 2.0, w, h


def center_size_to_box(cx: float, cy: float, w: float, h: float) -> tuple[float, float, float, float]:
    """The inverse of :func:`box_to_center_size`."""
    return cx - w / 2.0, cy - h / 2.0, w, h


def detection_array_message(store, box, stamp_ns: int, frame_id: str, target_id: str = '',
                            label: str = '', score: float | None = None):
    """A ``vision_msgs/Detection2DArray`` with one detection for ``box`` (empty when unknown).

    ``score`` adds one ``ObjectHypothesisWithPose`` (class ``label``); ground truth has none.
    """
    array_header = header(store, stamp_ns, frame_id)
    detections = ([_detection(store, array_header, box, target_id, label, score)]
                  if box_is_known(box) else [])
    return store.types[DETECTIONS_TYPE](header=array_header, detections=detections)


def targets_array_message(store, boxes_by_target: dict, stamp_ns: int, frame_id: str):
    """A ``vision_msgs/Detection2DArray`` with one detection per target whose box is known
    (``Detection2D.id`` = the target's id), as the node publishes several targets; a target
    without a box on this frame has none."""
    array_header = header(store, stamp_ns, frame_id)
    detections = [_detection(store, array_header, box, target_id)
                  for target_id, box in boxes_by_target.items() if box_is_known(box)]
    return store.types[DETECTIONS_TYPE](header=array_header, detections=detections)


def _detection(store, array_header, box, target_id: str, label: str = '',
               score: float | None = None):
    types = store.types
    cx, cy, w, h = box_to_center_size(box)
    bbox = types['vision_msgs/msg/BoundingBox2D'](
        center=types['vision_msgs/msg/Pose2D'](
            position=types['vision_msgs/msg/Point2D'](x=cx, y=cy), theta=0.0),
        size_x=w, size_y=h)
    results = [] if score is None else [_hypothesis(store, label, score)]
    return types['vision_msgs/msg/Detection2D'](
        header=array_header, results=results, bbox=bbox, id=target_id)


def _hypothesis(store, label: str, score: float):
    types = store.types
    pose = types['geometry_msgs/msg/PoseWithCovariance'](
        pose=types['geometry_msgs/msg/Pose'](
            position=types['geometry_msgs/msg/Point'](x=0.0, y=0.0, z=0.0),
            orientation=types['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0)),
        covariance=np.zeros(36, dtype=np.float64))
    return types['vision_msgs/msg/ObjectHypothesisWithPose'](
        hypothesis=types['vision_msgs/msg/ObjectHypothesis'](class_id=label, score=float(score)),
        pose=pose)


def detection_box(detection) -> tuple[float, float, float, float]:
    """A ``Detection2D``'s 0-based ``(x, y, w, h)``."""
    bbox = detection.bbox
    return center_size_to_box(float(bbox.center.position.x), float(bbox.center.position.y),
                              float(bbox.size_x), float(bbox.size_y))


def detection_score(detection) -> float:
    """A ``Detection2D``'s first hypothesis score, NaN when it has none."""
    if len(detection.results) == 0:
        return math.nan
    return float(detection.results[0].hypothesis.score)


def detection_array_box(message):
    """The first detection's 0-based ``(x, y, w, h)``, or None for an empty array.

    Works on rosbags and rclpy messages alike (same field names), as do the functions below.
    """
    if len(message.detections) == 0:
        return None
    return detection_box(message.detections[0])


def detections_by_target(message) -> dict:
    """The array's detections keyed by ``Detection2D.id`` (the first one where an id repeats)."""
    found = {}
    for detection in message.detections:
        found.setdefault(str(detection.id), detection)
    return found
