"""Fixtures of the node tests: a ROS client in the test process and tracker_node processes.

The harness needs rclpy and the built interfaces; without them these fixtures skip.
"""

import pytest


def _harness():
    return pytest.importorskip(
        'ros_harness', reason='rclpy or the built ROS interfaces (vision_msgs, '
                              'siam_tracking_ros.msg) are missing: run `make setup`')


@pytest.fixture(scope='session')
def ros_client():
    client = _harness().RosClient()
    yield client
    client.shutdown()


@pytest.fixture
def start_tracker(ros_client, tmp_path, request):
    """Factory: start a tracker_node in a namespace of its own and wait until it is active.
    Every node it started is stopped (SIGINT, then terminate, then kill) after the test."""
    fleet = _harness().TrackerFleet(ros_client, tmp_path, request.node.name)
    yield fleet.start
    fleet.close()


@pytest.fixture(scope='module')
def module_fleet(ros_client, tmp_path_factory, request):
    """Like start_tracker, but the nodes live for the whole test module (started on demand)."""
    fleet = _harness().TrackerFleet(ros_client, tmp_path_factory.mktemp('nodes'),
                                    request.module.__name__)
    yield fleet
    fleet.close()


@pytest.fixture
def scene():
    return _harness().MovingTargetScene()
