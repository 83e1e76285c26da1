"""tracker_node end to end over DDS: frames in, detections out, target services.

One node (raw input, uav profile, siamfc_alexnet on CPU, 320x240 frames) serves the module;
every test streams its own frame indices, so stamps never repeat across tests.
"""

import math
import time

import numpy as np
import pytest

harness = pytest.importorskip('ros_harness', reason='rclpy or the built ROS interfaces are '
                                                    'missing: run `make setup`')

from sensor_msgs.msg import Image  # noqa: E402

from siam_tracking_ros.ros.frames import stamp_to_ns  # noqa: E402

pytestmark = pytest.mark.dds
stamp_of = harness.stamp_of


@pytest.fixture(scope='module')
def node(module_fleet):
    return module_fleet.start()


def test_idle_node_publishes_empty_detections_with_the_frames_stamps(node, scene):
    indices = range(0, 15)
    node.stream(scene, indices)
    last = node.detection_for(indices[-1])
    assert last.detections == [] and last.header.frame_id == 'camera'
    published = {stamp_to_ns(stamp_of(i)) for i in indices}
    received = [stamp_to_ns(m.header.stamp) for m in node.detections.messages()]
    assert received and set(received) <= published
    status = node.status_for(indices[-1])
    assert status.state == status.IDLE and status.tracker == 'siamfc_alexnet'
    assert status.device == 'cpu' and status.latency_ms > 0


def test_set_target_tracks_and_clear_target_empties(node, scene):
    node.stream(scene, range(100, 110))
    reply = node.set_target(scene.box(109), target_id='car1', label='car')
    assert reply.success, reply.message
    assert stamp_to_ns(reply.frame_stamp) in {stamp_to_ns(stamp_of(i)) for i in range(100, 110)}

    node.stream(scene, range(110, 125))
    tracked = node.detection_for(124)
    assert len(tracked.detections) == 1
    detection = tracked.detections[0]
    assert detection.id == 'car1' and detection.header.stamp == tracked.header.stamp
    assert detection.results[0].hypothesis.class_id == 'car'
    assert 0.0 <= detection.results[0].hypothesis.score <= 1.0
    assert detection.bbox.size_x > 0 and detection.bbox.size_y > 0
    status = node.status_for(124)
    assert status.state in (status.TRACKING, status.LOST)
    assert (status.target_id, status.label) == ('car1', 'car')

    reply = node.clear_target()
    assert reply.success and reply.message == 'target cleared'
    node.stream(scene, range(125, 130))
    assert node.detection_for(129).detections == []
    assert node.status_for(129).state == status.IDLE
    assert node.clear_target().message == 'no target was set'


def test_select_target_at_point_proposes_a_box_and_tracks(node, scene):
    node.stream(scene, range(200, 209))
    node.deliver(harness.image_message(scene.frame(209), stamp_of(209)), node.detections)
    x, y, w, h = scene.box(209)
    reply = node.select_at_point(x + w / 2, y + h / 2, stamp=stamp_of(209), label='thing')
    assert reply.success, reply.message
    assert reply.frame_stamp == stamp_of(209)
    assert reply.box_x <= x + w / 2 <= reply.box_x + reply.box_width
    assert reply.box_y <= y + h / 2 <= reply.box_y + reply.box_height
    node.stream(scene, range(210, 220))
    status = node.status_for(219)
    assert status.label == 'thing' and status.state != status.IDLE
    node.clear_target()


def test_stamped_set_target_initialises_on_the_older_frame_and_catches_up(node, scene):
    # The camera is best effort with depth 1: a loaded machine may still drop a frame, as a real
    # camera link would. The request names an older frame the node did receive: the first of
    # 310, 309, 311, ... that is in its history (a missing one is refused for that reason only).
    node.stream(scene, range(300, 316), rate_hz=10.0)
    for frame in (310, 309, 311, 308, 312, 307):
        reply = node.set_target(scene.box(frame), stamp=stamp_of(frame), target_id='old')
        if reply.success:
            break
        assert 'no frame with stamp' in reply.message, reply.message
    assert reply.success, reply.message
    assert reply.frame_stamp == stamp_of(frame)
    node.stream(scene, range(330, 340))
    tracked = node.detection_for(339)
    status = node.status_for(339)
    assert status.target_id == 'old' and status.state != status.IDLE
    if status.state == status.TRACKING:
        assert tracked.detections[0].id == 'old'
    node.clear_target()


def test_stamp_outside_the_history_is_refused_with_the_available_range(node, scene):
    node.stream(scene, range(400, 404))
    # The request must not overtake the newest frame, which the message names.
    node.deliver(harness.image_message(scene.frame(404), stamp_of(404)), node.detections)
    reply = node.set_target(scene.box(400), stamp=stamp_of(99_999))
    assert not reply.success
    assert 'no frame with stamp 1999.990000000 in the history' in reply.message
    assert 'frames from' in reply.message and ' to 1004.040000000' in reply.message


@pytest.mark.parametrize('box,expected', [
    ((float('nan'), 10, 20, 20), 'box must be finite'),
    ((10, 10, 0, 20), 'width and height must be positive'),
    ((10, 10, 20, -5), 'width and height must be positive'),
    ((500, 400, 20, 20), 'does not overlap the 320x240 image'),
    ((float('inf'), 10, 20, 20), 'box must be finite'),
])
def test_bad_boxes_are_refused_with_the_reason(node, scene, box, expected):
    node.stream(scene, range(500, 502))
    reply = node.set_target(box)
    assert not reply.success
    assert reply.message.startswith('set_target refused:') and expected in reply.message


def test_point_outside_the_image_is_refused(node, scene):
    node.stream(scene, range(520, 522))
    reply = node.select_at_point(320, 5)
    assert not reply.success and 'outside the 320x240 image' in reply.message


def bad_images():
    """(cause key, message) pairs of malformed raw images."""
    good = harness.image_message(np.zeros((8, 8, 3), np.uint8), stamp_of(0))

    def variant(**fields):
        message = Image(header=good.header, height=good.height, width=good.width,
                        encoding=good.encoding, step=good.step, data=good.data)
        for name, value in fields.items():
            setattr(message, name, value)
        return message

    return [('unknown_encoding', variant(encoding='bayer_grbg8')),
            ('step_size_mismatch', variant(step=10)),
            ('truncated_data', variant(data=good.data[:100])),
            ('invalid_size', variant(height=0, data=good.data[:0]))]


def test_each_bad_image_is_reported_once_and_the_node_keeps_tracking(node, scene):
    for cause, message in bad_images():
        node.publish(message)
        assert node.wait_for_log(f'[{cause}]'), f'no warning for {cause}:\n{node.process.log()}'
        for _ in range(3):
            node.publish(message)
            time.sleep(0.05)
    node.stream(scene, range(600, 605))
    assert node.set_target(scene.box(604)).success
    node.stream(scene, range(605, 610))
    assert node.detection_for(609).header.stamp == stamp_of(609)
    log = node.process.log()
    for cause, _ in bad_images():
        assert log.count(f'[{cause}]') == 1, f'{cause} reported more than once:\n{log}'
    assert node.process.alive()
    node.clear_target()


def test_debug_image_is_published_while_subscribed(node, scene):
    collector = harness.Collector()
    subscription = node.client.node.create_subscription(
        Image, f'{node.ns}/debug_image', collector, harness.BEST_EFFORT)
    try:
        deadline = time.monotonic() + 10
        while node.process.alive() and time.monotonic() < deadline and not collector.messages():
            node.stream(scene, range(1500, 1503))
        image = collector.wait_for(lambda m: True, 1.0)
        assert image is not None, 'no debug image while subscribed'
        assert (image.encoding, image.width, image.height) == ('bgr8', 320, 240)
        assert image.header.frame_id == 'camera'
    finally:
        node.client.node.destroy_subscription(subscription)


def test_status_reports_latency_and_rate(node, scene):
    node.stream(scene, range(1600, 1630), rate_hz=30.0)
    status = node.status_for(1629)
    assert 0 < status.fps <= 35
    assert math.isfinite(status.latency_ms) and status.latency_ms > 0
