"""Building the node's output messages from a tracked frame."""

from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from siam_tracking_ros.msg import TargetStatus, TrackerStatus
from siam_tracking_ros.ros.engine import NodeState, TargetReport, TargetUpdate, summary_state
from siam_tracking_ros.ros.image_codec import fill_raw_message

STATE_COLOURS = {NodeState.TRACKING: (0, 220, 0), NodeState.LOST: (0, 0, 255)}


def detections_message(update: TargetUpdate) -> Detection2DArray:
    """The frame's detections: one per target TRACKING on this frame (id = its target_id), so
    a subscriber sees a loss on the very frame it happens; LOST targets and targets still
    catching up have none."""
    array = Detection2DArray(header=update.frame.header)
    for report in update.targets:
        if report.state == NodeState.TRACKING and report.box is not None:
            array.detections.append(_detection(update.frame.header, report))
    return array


def _detection(header, report: TargetReport) -> Detection2D:
    x, y, w, h = (float(v) for v in report.box)
    detection = Detection2D(header=header, id=report.target.target_id)
    # Continuous pixel coordinates: the centre of a box starting at x and w wide is x + w/2.
    detection.bbox.center.position.x = x + w / 2.0
    detection.bbox.center.position.y = y + h / 2.0
    detection.bbox.size_x, detection.bbox.size_y = w, h
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = report.target.label
    hypothesis.hypothesis.score = float(report.score)
    detection.results.append(hypothesis)
    return detection


def status_message(update: TargetUpdate, tracker: str, device: str, fps: float,
                   latency_ms: float, frames_skipped: int = 0, **counters) -> TrackerStatus:
    """The status of a processed frame; ``counters``: TrackerStatus counter fields."""
    status = _status(update.frame.header, update.targets, tracker, device, fps, latency_ms,
                     frames_skipped=frames_skipped, **counters)
    status.frame_time_ms = float(update.frame_time_ms)
    return status


def heartbeat_status(header, targets: tuple[TargetReport, ...], tracker: str, device: str,
                     fps: float, **counters) -> TrackerStatus:
    """The status published while no frame is processed (``header``: the node's clock)."""
    return _status(header, targets, tracker, device, fps, 0.0, **counters)


def _status(header, targets, tracker, device, fps, latency_ms, **counters) -> TrackerStatus:
    single = targets[0].target if len(targets) == 1 else None
    status = TrackerStatus(
        header=header, state=int(summary_state(targets)),
        score=float(max((report.score for report in targets), default=0.0)),
        tracker=tracker, device=device, fps=float(fps), latency_ms=float(latency_ms),
        target_id=single.target_id if single else '', label=single.label if single else '',
        targets=[target_status(report) for report in targets])
    for name, value in counters.items():
        setattr(status, name, int(value))
    return status


def target_status(report: TargetReport) -> TargetStatus:
    return TargetStatus(target_id=report.target.target_id, label=report.target.label,
                        state=int(report.state), score=float(report.score),
                        catch_up_pending=int(report.catch_up_pending))


def draw_track(canvas: np.ndarray, state: NodeState, box, score: float, label: str,
               origin=(8, 22)) -> None:
    """Draw the box (when there is one) and 'label STATE score' on a BGR image in place, the
    text at ``origin``."""
    text = state.name
    if box is not None and state != NodeState.IDLE:
        x, y, w, h = (int(round(float(v))) for v in box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), STATE_COLOURS[state], 2)
        text = f'{label} {text} {score:.2f}'.strip()
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)


def debug_image_message(update: TargetUpdate) -> Image:
    """The frame with each target's box, state and score drawn on it, as a bgr8 Image (IDLE
    written in the corner when there is no target)."""
    canvas = np.array(update.frame.image(), dtype=np.uint8, copy=True)
    if not update.targets:
        draw_track(canvas, NodeState.IDLE, None, 0.0, '')
    for row, report in enumerate(update.targets):
        name = ' '.join(filter(None, (report.target.target_id, report.target.label)))
        draw_track(canvas, report.state, report.box, report.score, name, (8, 22 + 22 * row))
    return fill_raw_message(Image(header=update.frame.header), canvas)
