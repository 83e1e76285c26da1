"""Output messages built from a tracked frame."""

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip('vision_msgs.msg', reason='vision_msgs is not built: run `make setup`')

from std_msgs.msg import Header  # noqa: E402

from siam_tracking_ros.ros.engine import (NodeState, Target, TargetReport,  # noqa: E402
                                          TargetUpdate)
from siam_tracking_ros.ros.messages import (debug_image_message, detections_message,  # noqa: E402
                                            heartbeat_status, status_message)


def frame():
    header = Header(frame_id='cam')
    header.stamp.sec, header.stamp.nanosec = 5, 7
    return SimpleNamespace(header=header, image=lambda: np.zeros((60, 80, 3), np.uint8))


def update(state, box=(10.0, 20.0, 30.0, 40.0)):
    return TargetUpdate.single(frame(), state, 0.75, None if box is None else np.array(box),
                               Target('id7', 'car') if state != NodeState.IDLE else None)


def test_tracking_update_gives_one_detection_with_the_box_centre():
    message = detections_message(update(NodeState.TRACKING))
    assert message.header.stamp.nanosec == 7 and message.header.frame_id == 'cam'
    (detection,) = message.detections
    assert (detection.bbox.center.position.x, detection.bbox.center.position.y) == (25.0, 40.0)
    assert (detection.bbox.size_x, detection.bbox.size_y) == (30.0, 40.0)
    assert detection.id == 'id7' and detection.results[0].hypothesis.class_id == 'car'
    assert detection.results[0].hypothesis.score == 0.75


@pytest.mark.parametrize('state', [NodeState.LOST, NodeState.IDLE])
def test_lost_or_idle_gives_an_empty_array(state):
    assert detections_message(update(state)).detections == []


def test_status_and_debug_image():
    status = status_message(update(NodeState.LOST), 'siamfc_alexnet', 'cpu', 12.0, 33.0, 4)
    assert (status.state, status.target_id, status.label, status.frames_skipped) == (2, 'id7',
                                                                                     'car', 4)
    image = debug_image_message(update(NodeState.TRACKING))
    assert (image.encoding, image.width, image.height, image.step) == ('bgr8', 80, 60, 240)
    pixels = np.frombuffer(image.data, np.uint8).reshape(60, 80, 3)
    assert tuple(pixels[45, 40]) == (0, 220, 0)  # right edge of the box, TRACKING colour


def test_status_carries_the_counters_and_a_heartbeat_has_no_frame():
    status = status_message(update(NodeState.TRACKING), 't', 'cpu', 1.0, 2.0, 3,
                            decode_errors=4, requests_refused=5, catch_up_pending=6)
    assert (status.frames_skipped, status.decode_errors, status.requests_refused,
            status.catch_up_pending) == (3, 4, 5, 6)
    header = Header(frame_id='cam')
    beat = heartbeat_status(header, (), 't', 'cpu', 0.0, frames_missing=7)
    assert (beat.state, beat.target_id, beat.frames_missing, beat.latency_ms) == (0, '', 7, 0.0)
    assert beat.targets == [] and beat.frame_time_ms == 0.0


def several():
    box = np.array([10.0, 20.0, 30.0, 40.0])
    return TargetUpdate(frame(), (
        TargetReport(Target('a', 'car'), NodeState.TRACKING, 0.8, box),
        TargetReport(Target('b', 'van'), NodeState.LOST, 0.1, box + 5),
        TargetReport(Target('c', ''), NodeState.CATCHING_UP, 0.9, None, catch_up_pending=4)),
        frame_time_ms=42.5)


def test_several_targets_one_detection_per_tracked_target_and_each_in_status():
    (detection,) = detections_message(several()).detections
    assert detection.id == 'a' and detection.results[0].hypothesis.class_id == 'car'
    status = status_message(several(), 't', 'cpu', 1.0, 2.0, catch_up_pending=4)
    assert [(t.target_id, t.label, t.state, t.catch_up_pending) for t in status.targets] == [
        ('a', 'car', 1, 0), ('b', 'van', 2, 0), ('c', '', 3, 4)]
    assert status.targets[0].state == status.TRACKING and status.targets[2].CATCHING_UP == 3
    assert (status.state, status.target_id, status.frame_time_ms) == (1, '', 42.5)
    assert status.score == pytest.approx(0.9)
    lost_only = TargetUpdate(frame(), several().targets[1:2])
    assert status_message(lost_only, 't', 'cpu', 1.0, 2.0).state == 2
    assert detections_message(lost_only).detections == []
