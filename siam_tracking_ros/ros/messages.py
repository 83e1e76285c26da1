"""Building the node's output messages from a tracked frame."""

from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from siam_tracking_ros.msg import TrackerStatus
from siam_tracking_ros.ros.engine import NodeState, TargetUpdate
from siam_tracking_ros.ros.image_codec import fill_raw_message

STATE_COLOURS = {NodeState.TRACKING: (0, 220, 0), NodeState.LOST: (0, 0, 255)}


def detections_message(update: TargetUpdate) -> Detection2DArray:
    """The frame's detections; empty unless the target is being tracked, so a subscriber
    sees a loss on the very frame it happens."""
    array = Detection2DArray(header=update.frame.header)
    if update.state != NodeState.TRACKING or update.box is None:
        return array
    x, y, w, h = (float(v) for v in update.box)
    detection = Detection2D(header=update.frame.header, id=update.target.target_id)
    # Continuous pixel coordinates: the centre of a box starting at x and w wide is x + w/2.
    detection.bbox.center.position.x = x + w / 2.0
    detection.bbox.center.position.y = y + h / 2.0
    detection.bbox.size_x, detection.bbox.size_y = w, h
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = update.target.label
    hypothesis.hypothesis.score = float(update.score)
    detection.results.append(hypothesis)
    array.detections.append(detection)
    return array


def status_message(update: TargetUpdate, tracker: str, device: str, fps: float,
                   latency_ms: float, frames_skipped: int = 0, **counters) -> TrackerStatus:
    """The status of a processed frame; ``counters``: TrackerStatus counter fields."""
    return _status(update.frame.header, update.state, update.score, update.target, tracker,
                   device, fps, latency_ms, frames_skipped=frames_skipped, **counters)


def heartbeat_status(header, state: NodeState, score: float, target, tracker: str, device: str,
                     fps: float, **counters) -> TrackerStatus:
    """The status published while no frame is processed (``header``: the node's clock)."""
    return _status(header, state, score, target, tracker, device, fps, 0.0, **counters)


def _status(header, state, score, target, tracker, device, fps, latency_ms,
            **counters) -> TrackerStatus:
    status = TrackerStatus(
        header=header, state=int(state), score=float(score), tracker=tracker, device=device,
        fps=float(fps), latency_ms=float(latency_ms),
        target_id=target.target_id if target else '', label=target.label if target else '')
    for name, value in counters.items():
        setattr(status, name, int(value))
    return status


def draw_track(canvas: np.ndarray, state: NodeState, box, score: float, label: str) -> None:
    """Draw the box (when there is one) and 'label STATE score' on a BGR image in place."""
    text = state.name
    if box is not None and state != NodeState.IDLE:
        x, y, w, h = (int(round(float(v))) for v in box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), STATE_COLOURS[state], 2)
        text = f'{label} {text} {score:.2f}'.strip()
    cv2.putText(canvas, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)


def debug_image_message(update: TargetUpdate) -> Image:
    """The frame with the box, state and score drawn on it, as a bgr8 Image."""
    canvas = np.array(update.frame.image(), dtype=np.uint8, copy=True)
    label = update.target.label if update.target else ''
    draw_track(canvas, update.state, update.box, update.score, label)
    return fill_raw_message(Image(header=update.frame.header), canvas)
