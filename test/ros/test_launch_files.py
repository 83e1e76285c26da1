"""Every launch file started for real, as `ros2 launch siam_tracking_ros <file> <args>` would.

`launch`, `launch_ros` and `ros2launch` are built by `make setup` from ../shared/ros_src (no
reachable package registry carries them); without that folder these tests skip. Each launch runs
in a process group of its own, the way a terminal runs `ros2 launch`, and is stopped as Ctrl-C
stops it: SIGINT to the whole group.
"""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ROS_SRC = REPO_ROOT.parent / 'shared' / 'ros_src'
PACKAGE = 'siam_tracking_ros'
if not ROS_SRC.is_dir():
    pytest.skip(f'{ROS_SRC} not found: the launch / launch_ros sources are needed to start the '
                'launch files for real', allow_module_level=True)
try:
    from ament_index_python.packages import get_package_share_directory
    import ros2launch.api  # noqa: F401  (built by make setup from ROS_SRC)
except ImportError as error:
    pytest.fail(f'{ROS_SRC} is there but ros2launch does not import ({error}): run `make setup`',
                pytrace=False)

harness = pytest.importorskip(
    'ros_harness', reason='rclpy or the built ROS interfaces are missing: run `make setup`')
from rcl_interfaces.msg import ParameterType  # noqa: E402
from rcl_interfaces.srv import GetParameters  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

# What `ros2 launch PACKAGE FILE ARGS...` runs (ros2launch.command.launch), minus the CLI parsing.
ROS2_LAUNCH = '''
import sys
from ros2launch.api import get_share_file_path_from_package, launch_a_launch_file
path = get_share_file_path_from_package(package_name=sys.argv[1], file_name=sys.argv[2])
sys.exit(launch_a_launch_file(launch_file_path=path, launch_file_arguments=sys.argv[3:],
                              noninteractive=True))
'''
LAUNCH_STOP_TIMEOUT_S = 40.0
NODE_ARGUMENTS = ('tracker:=siamfc_alexnet', 'device:=cpu')


class LaunchProcess:
    """`ros2 launch` in a process group of its own, its output collected as it comes."""

    def __init__(self, launch_file: str, arguments):
        env = dict(os.environ, PYTHONUNBUFFERED='1', RCUTILS_COLORIZED_OUTPUT='0')
        self.process = subprocess.Popen(
            [sys.executable, '-c', ROS2_LAUNCH, PACKAGE, launch_file, *arguments],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            start_new_session=True)
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.append(line)

    def output(self) -> str:
        return ''.join(self._lines)

    def alive(self) -> bool:
        return self.process.poll() is None

    def interrupt(self) -> int:
        """Ctrl-C in the launch's terminal: SIGINT to its whole process group; the exit code."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.wait(LAUNCH_STOP_TIMEOUT_S)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@dataclass
class LaunchedNode:
    """One node of a launch, in the shape ros_harness.NodeLink expects of a node process."""

    launch: LaunchProcess
    namespace: str
    image_topic: str
    links: list = field(default_factory=list)

    def alive(self) -> bool:
        return self.launch.alive()

    def log(self) -> str:
        return self.launch.output()


def share_file(*parts) -> Path:
    return Path(get_package_share_directory(PACKAGE), *parts)


def test_installed_launch_files_and_profiles_are_the_working_trees():
    """ros2 launch reads the installed copies: they must be the files under test here."""
    for folder, pattern in (('launch', '*.py'), ('config', '*.yaml')):
        for source in sorted((REPO_ROOT / folder).glob(pattern)):
            installed = share_file(folder, source.name)
            assert installed.is_file() and filecmp.cmp(source, installed, shallow=False), (
                f'{installed} differs from {source}: run `make setup`')


def test_unknown_profile_fails_the_launch_and_lists_the_profiles():
    launch = LaunchProcess('uav_tracker.launch.py', ['profile:=drone', *NODE_ARGUMENTS])
    try:
        code = launch.wait(60)
    finally:
        launch.kill()
    output = launch.output()
    assert code == 1, output
    assert "'drone'" in output or '"drone"' in output, output
    assert "['uav', 'vehicle']" in output, output
    assert 'process started' not in output, 'a node was started with an unknown profile'


def profile_values(profile: str) -> dict:
    return yaml.safe_load(share_file('config', f'{profile}.yaml').read_text())[
        '/**/tracker_node']['ros__parameters']


def get_parameters(link, names) -> dict:
    reply = link.call(GetParameters, 'tracker_node/get_parameters',
                      GetParameters.Request(names=list(names)))
    fields = {ParameterType.PARAMETER_BOOL: 'bool_value',
              ParameterType.PARAMETER_INTEGER: 'integer_value',
              ParameterType.PARAMETER_DOUBLE: 'double_value',
              ParameterType.PARAMETER_STRING: 'string_value'}
    return {name: getattr(value, fields[value.type]) for name, value in zip(names, reply.values)}


def node_namespaces(client) -> set:
    return {namespace for name, namespace in client.node.get_node_names_and_namespaces()
            if name == 'tracker_node'}


def wait_for_nodes(client, launch: LaunchProcess, namespaces, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert launch.alive(), f'the launch exited:\n{launch.output()}'
        if set(namespaces) <= node_namespaces(client):
            return
        time.sleep(0.2)
    raise AssertionError(f'nodes {sorted(namespaces)} did not come up; seen '
                         f'{sorted(node_namespaces(client))}:\n{launch.output()}')


def subscribers_of(client, topic: str) -> set:
    return {(info.node_namespace, info.node_name)
            for info in client.node.get_subscriptions_info_by_topic(topic)}


def check_node(client, node: LaunchedNode, profile: str, scene) -> None:
    """Namespace, remap and profile values of one launched node; then a frame, a target and a
    detection for a later frame."""
    link = harness.NodeLink(client, node, compressed=False, camera_qos=harness.BEST_EFFORT)
    node.links.append(link)
    link.wait_active()
    deadline = time.monotonic() + 10
    while (node.namespace, 'tracker_node') not in subscribers_of(client, node.image_topic):
        assert time.monotonic() < deadline, (
            f'{node.namespace}/tracker_node does not subscribe the remapped {node.image_topic}; '
            f'subscribers: {subscribers_of(client, node.image_topic)}')
        time.sleep(0.2)
    assert not subscribers_of(client, f'{node.namespace}/image'), 'image was not remapped'

    expected = profile_values(profile)
    differing = [name for name, value in expected.items()
                 if profile_values('uav' if profile == 'vehicle' else 'vehicle')[name] != value]
    names = ['profile', 'tracker', 'device', *differing]
    values = get_parameters(link, names)
    assert values == {**{name: expected[name] for name in names},
                      'tracker': 'siamfc_alexnet', 'device': 'cpu'}

    # The camera publishes on the remapped topic, not <namespace>/image.
    client.node.destroy_publisher(link.camera)
    link.camera = client.node.create_publisher(Image, node.image_topic, harness.BEST_EFFORT)
    frame = harness.image_message(scene.frame(0), harness.stamp_of(0))
    reply = None
    for _ in range(50):  # until the best-effort subscription has matched and the frame arrived
        link.publish(frame)
        time.sleep(0.1)
        reply = link.set_target(scene.box(0))
        if reply.success:
            break
    assert reply is not None and reply.success, f'{reply}\n{node.log()[-3000:]}'
    link.stream(scene, range(1, 6), rate_hz=10.0)
    detection = link.detection_for(5)
    assert detection.detections, 'no box for a frame after the target was set'
    box = detection.detections[0].bbox
    x, y, w, h = scene.box(5)
    assert abs(box.center.position.x - (x + w / 2)) < 8
    assert abs(box.center.position.y - (y + h / 2)) < 8


def stop_cleanly(launch: LaunchProcess, nodes) -> None:
    code = launch.interrupt()
    output = launch.output()
    assert code == 0, f'ros2 launch exited {code} on Ctrl-C:\n{output}'
    assert 'Traceback' not in output and 'KeyboardInterrupt' not in output, output
    assert output.count('process has finished cleanly') == len(nodes), output


LAUNCHES = {
    'uav_tracker.launch.py': (
        'uav', lambda tag: [f'namespace:=/{tag}', f'image:=/{tag}_camera/image_raw'],
        lambda tag: [(f'/{tag}', f'/{tag}_camera/image_raw')]),
    'vehicle_tracker.launch.py': (
        'vehicle', lambda tag: [f'namespace:=/{tag}/car', f'image:=/{tag}/front/image_raw'],
        lambda tag: [(f'/{tag}/car', f'/{tag}/front/image_raw')]),
    # A profile other than the file's default, and one node per camera.
    'multi_camera.launch.py': (
        'vehicle', lambda tag: [f'namespace:=/{tag}', 'cameras:=front,down', 'profile:=vehicle',
                                f'image_pattern:=/{tag}_cams/{{camera}}/image_raw'],
        lambda tag: [(f'/{tag}/{camera}', f'/{tag}_cams/{camera}/image_raw')
                     for camera in ('front', 'down')]),
}


def test_every_launch_file_is_covered():
    assert set(LAUNCHES) == {path.name for path in (REPO_ROOT / 'launch').glob('*.launch.py')}


@pytest.mark.parametrize('launch_file', sorted(LAUNCHES))
def test_launch_file_starts_tracking_nodes_and_stops_on_ctrl_c(launch_file, ros_client, scene):
    profile, arguments, expected_nodes = LAUNCHES[launch_file]
    tag = f'lt_{launch_file.split(".")[0]}_{os.getpid()}'
    launch = LaunchProcess(launch_file, [*arguments(tag), *NODE_ARGUMENTS])
    nodes = [LaunchedNode(launch, namespace, topic) for namespace, topic in expected_nodes(tag)]
    try:
        wait_for_nodes(ros_client, launch, [node.namespace for node in nodes])
        for node in nodes:
            check_node(ros_client, node, profile, scene)
        stop_cleanly(launch, nodes)
    finally:
        for node in nodes:
            for link in node.links:
                link.close()
        launch.kill()
