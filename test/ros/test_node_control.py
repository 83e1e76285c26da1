"""tracker_node control over DDS: lifecycle, run-time tracker switch, compressed input, QoS."""

import argparse
import time

import cv2
import pytest

harness = pytest.importorskip('ros_harness', reason='rclpy or the built ROS interfaces are '
                                                    'missing: run `make setup`')

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from siam_tracking_ros.core.registry import list_trackers  # noqa: E402

pytestmark = pytest.mark.dds
stamp_of = harness.stamp_of


def test_switching_trackers_and_bad_switches_keep_the_node_tracking(start_tracker, scene,
                                                                    tmp_path):
    node = start_tracker()
    reply = node.set_target(scene.box(0))
    assert not reply.success and 'no frame received yet' in reply.message

    node.stream(scene, range(0, 5))
    assert node.set_target(scene.box(4), target_id='t').success
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'this is not a checkpoint')
    bad_values = [({'tracker': 'no_such_tracker'}, "unknown tracker 'no_such_tracker'"),
                  ({'weights': str(tmp_path / 'missing.pth')}, 'does not exist'),
                  ({'weights': str(corrupt)}, "could not load tracker 'siamfc_alexnet'"),
                  ({'device': 'cuda:99'}, "device 'cuda:99' requested"),
                  ({'lost_threshold': 0.9, 'recover_threshold': 0.1}, 'thresholds must satisfy')]
    for values, expected in bad_values:
        results = node.set_parameters(**values)
        assert not results[0].successful and expected in results[0].reason, results[0].reason
    node.stream(scene, range(5, 10))
    status = node.status_for(9)
    assert status.tracker == 'siamfc_alexnet' and status.state != status.IDLE

    other = next(name for name in ('siamrpn_alexnet', 'siamfc_alexnet') if name in list_trackers())
    results = node.set_parameters(tracker=other)
    assert results[0].successful, results[0].reason
    node.stream(scene, range(10, 15))
    status = node.status_for(14)
    assert status.tracker == other and status.target_id == 't' and status.state != status.IDLE


def test_lifecycle_deactivate_keeps_the_model_and_activate_resumes(start_tracker, scene):
    node = start_tracker(history_size=5)
    node.stream(scene, range(0, 3))
    assert node.set_target(scene.box(2)).success
    assert node.change_state('deactivate') and node.lifecycle_state() == 'inactive'
    reply = node.set_target(scene.box(2))
    assert not reply.success and 'not active' in reply.message
    assert node.change_state('activate') and node.lifecycle_state() == 'active'
    node.stream(scene, range(3, 6))
    assert node.status_for(5).state == 0  # deactivation ended the track: IDLE
    assert node.change_state('deactivate') and node.change_state('cleanup')
    assert node.lifecycle_state() == 'unconfigured'
    assert node.change_state('configure') and node.change_state('activate')
    node.stream(scene, range(6, 9))
    assert node.set_target(scene.box(8)).success


def jpeg_message(image, index, data=None):
    ok, encoded = cv2.imencode('.jpg', image)
    assert ok
    message = CompressedImage(header=Header(stamp=stamp_of(index), frame_id='camera'),
                              format='jpeg')
    message.data.frombytes(encoded.tobytes() if data is None else data(encoded.tobytes()))
    return message


def test_compressed_input_reliable_qos_and_their_errors(start_tracker, ros_client, scene):
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    node = start_tracker(compressed=True, camera_qos=reliable, reliable_qos=True)
    best_effort_camera = ros_client.node.create_publisher(
        CompressedImage, f'{node.ns}/image/compressed', harness.BEST_EFFORT)
    try:
        assert node.wait_for_log('[incompatible_qos]'), node.process.log()
        assert 'policy RELIABILITY' in node.process.log()
    finally:
        ros_client.node.destroy_publisher(best_effort_camera)

    broken = [('truncated_data', lambda data: data[:len(data) // 2]),
              ('corrupt_compressed', lambda data: data[:2] + bytes(300) + data[-2:])]
    for index, (cause, damage) in enumerate(broken):
        node.publish(jpeg_message(scene.frame(index), index, damage))
        assert node.wait_for_log(f'[{cause}]'), f'no {cause} warning:\n{node.process.log()}'

    for index in range(10, 14):
        node.publish(jpeg_message(scene.frame(index), index))
        time.sleep(0.03)
    assert node.status_for(13).state == 0
    assert node.set_target(scene.box(13), target_id='jpeg').success
    for index in range(14, 18):
        node.publish(jpeg_message(scene.frame(index), index))
        time.sleep(0.03)
    status = node.status_for(17)
    assert status.target_id == 'jpeg' and status.state != status.IDLE


def run_target_command(*argv) -> int:
    from siam_tracking_ros.tools import cmd_target
    parser = argparse.ArgumentParser()
    cmd_target.add_arguments(parser)
    return cmd_target.run(parser.parse_args(list(argv)))


def test_siamtrack_target_calls_the_services(start_tracker, scene, capsys):
    node = start_tracker()
    assert run_target_command('--namespace', node.ns, 'set', '10', '10', '20', '20') == 1
    assert 'no frame received yet' in capsys.readouterr().out
    node.stream(scene, range(0, 4))
    x, y, w, h = scene.box(3)
    stamp = f'{stamp_of(3).sec}.{stamp_of(3).nanosec:09d}'
    assert run_target_command('--namespace', node.ns, 'set', str(x), str(y), str(w), str(h),
                              '--stamp', stamp, '--label', 'car') == 0
    assert f'frame stamp: {stamp}' in capsys.readouterr().out
    assert run_target_command('--namespace', node.ns, 'point', str(x + 5), str(y + 5)) == 0
    assert 'box: x=' in capsys.readouterr().out
    assert run_target_command('--namespace', node.ns, 'set', str(x), str(y), str(w), str(h),
                              '--id', 'car2') == 0
    assert "2 targets: '', 'car2'" in capsys.readouterr().out
    assert run_target_command('--namespace', node.ns, 'clear', '--id', 'car3') == 1
    assert "no target with id 'car3' is tracked (tracked: '', 'car2')" in \
        capsys.readouterr().out
    assert run_target_command('--namespace', node.ns, 'clear', '--id', '') == 0
    assert "target '' cleared; tracking 'car2'" in capsys.readouterr().out
    assert run_target_command('--namespace', node.ns, 'clear') == 0
    assert 'target cleared' in capsys.readouterr().out
    assert run_target_command('--namespace', '/nobody_here', '--timeout', '0.5', 'clear') == 1
    assert 'is not offered' in capsys.readouterr().err
