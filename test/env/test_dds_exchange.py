"""Two processes exchange this package's service and a vision_msgs/Detection2DArray over real DDS."""
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy is part of the pip environment made by `make setup`')
from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from siam_tracking_ros.srv import SetTarget  # noqa: E402

PEER = Path(__file__).with_name('dds_peer.py')


@pytest.fixture
def peer():
    namespace = '/env_' + uuid.uuid4().hex[:8]
    process = subprocess.Popen([sys.executable, str(PEER), namespace], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == 'READY', 'the peer process did not start'
        yield namespace
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.dds
def test_service_call_and_detections_between_processes(peer):
    rclpy.init()
    node = rclpy.create_node('env_test_client', namespace=peer)
    try:
        received = []
        node.create_subscription(
            Detection2DArray, 'detections', received.append,
            QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        client = node.create_client(SetTarget, 'set_target')
        assert client.wait_for_service(timeout_sec=20), 'set_target of the peer process never appeared'
        request = SetTarget.Request(x=10.0, y=20.0, width=30.0, height=40.0,
                                    stamp=Time(sec=12, nanosec=345), target_id='7', label='car')
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=20)
        response = future.result()
        assert response is not None, 'no reply from the peer process'
        assert response.success and response.message == 'box 30x40 received'
        assert (response.frame_stamp.sec, response.frame_stamp.nanosec) == (12, 345)

        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert received, 'no Detection2DArray arrived from the peer process'
        (detection,) = received[0].detections
        assert (received[0].header.stamp.sec, received[0].header.stamp.nanosec) == (12, 345)
        assert detection.id == '7' and detection.results[0].hypothesis.class_id == 'car'
        assert detection.bbox.center.position.x == pytest.approx(25.0)
        assert detection.bbox.center.position.y == pytest.approx(40.0)
        assert (detection.bbox.size_x, detection.bbox.size_y) == (30.0, 40.0)
        assert detection.results[0].hypothesis.score == pytest.approx(0.75)
    finally:
        node.destroy_node()
        rclpy.shutdown()
