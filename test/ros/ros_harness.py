"""Harness for the node tests: tracker_node processes and a ROS client in the test process.

Each test starts its node(s) in a namespace of its own; the client talks to them over DDS
exactly as a camera driver and a ground station would. Importing this module needs rclpy and
the built interfaces; the test modules import it with ``pytest.importorskip``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

import rclpy
from builtin_interfaces.msg import Time
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2DArray

from siam_tracking_ros.msg import TrackerStatus
from siam_tracking_ros.ros.executor import OnceSubmittedExecutor
from siam_tracking_ros.ros.frames import stamp_to_ns
from siam_tracking_ros.ros.image_codec import fill_raw_message
from siam_tracking_ros.ros.process import start_tracker_node, stop_process
from siam_tracking_ros.srv import ClearTarget, SelectTargetAtPoint, SetTarget

NODE_START_TIMEOUT_S = 90.0
CALL_TIMEOUT_S = 30.0
BEST_EFFORT = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.BEST_EFFORT)
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                      reliability=ReliabilityPolicy.RELIABLE)


# ---------------------------------------------------------------------------- synthetic camera
class MovingTargetScene:
    """A textured background with a bright checkered square moving on a circle."""

    def __init__(self, width=320, height=240, side=40, seed=0):
        rng = np.random.default_rng(seed)
        coarse = rng.integers(40, 160, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        self.background = np.kron(coarse, np.ones((8, 8, 1), np.uint8))[:height, :width].copy()
        checks = (np.indices((side, side)).sum(axis=0) // 8) % 2
        self.patch = np.where(checks[:, :, None] == 1, [30, 220, 250], [250, 40, 40]).astype(np.uint8)
        self.width, self.height, self.side = width, height, side

    def box(self, index: int) -> tuple[float, float, float, float]:
        angle = index * 0.05
        cx = self.width / 2 + 0.25 * self.width * np.cos(angle)
        cy = self.height / 2 + 0.25 * self.height * np.sin(angle)
        return (float(round(cx - self.side / 2)), float(round(cy - self.side / 2)),
                float(self.side), float(self.side))

    def frame(self, index: int) -> np.ndarray:
        image = self.background.copy()
        x, y, w, h = (int(v) for v in self.box(index))
        image[y:y + h, x:x + w] = self.patch
        return image


def stamp_of(index: int, base_s: int = 1_000) -> Time:
    """Distinct, increasing stamps 10 ms apart."""
    nanoseconds = index * 10_000_000
    return Time(sec=base_s + nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def image_message(image_bgr: np.ndarray, stamp: Time, frame_id='camera') -> Image:
    return fill_raw_message(Image(header=Header(stamp=stamp, frame_id=frame_id)), image_bgr)


# ---------------------------------------------------------------------------- node process
class TrackerProcess:
    """One tracker_node started as `python -m siam_tracking_ros.ros.tracker_node`."""

    def __init__(self, namespace: str, log_path: Path, profile: str, parameters: dict):
        self.namespace = namespace
        self.log_path = log_path
        self._log = open(log_path, 'w')
        self.process = start_tracker_node(
            namespace, profile, {'tracker': 'siamfc_alexnet', 'device': 'cpu', **parameters},
            self._log)

    def log(self) -> str:
        return self.log_path.read_text(errors='replace')

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


# ---------------------------------------------------------------------------- client side
class Collector:
    """Keeps received messages with their arrival time (time.time_ns())."""

    def __init__(self):
        self.items: deque = deque(maxlen=20_000)
        self._condition = threading.Condition()

    def __call__(self, message):
        with self._condition:
            self.items.append((time.time_ns(), message))
            self._condition.notify_all()

    def messages(self) -> list:
        with self._condition:
            return [message for _, message in self.items]

    def wait_for(self, predicate, timeout: float = 10.0):
        """The first received message satisfying ``predicate`` (waiting for it), or None."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                for _, message in self.items:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._condition.wait(remaining)

    def clear(self):
        with self._condition:
            self.items.clear()


class NodeLink:
    """The test's view of one tracker_node: camera publisher, output subscribers, services."""

    def __init__(self, client, process: TrackerProcess, compressed: bool, camera_qos):
        self.client, self.process, self.ns = client, process, process.namespace
        node = client.node
        image_type, topic = (CompressedImage, 'image/compressed') if compressed else (Image, 'image')
        self.camera = node.create_publisher(image_type, f'{self.ns}/{topic}', camera_qos)
        self.detections, self.status = Collector(), Collector()
        self._subscriptions = [
            node.create_subscription(Detection2DArray, f'{self.ns}/detections', self.detections,
                                     RELIABLE),
            node.create_subscription(TrackerStatus, f'{self.ns}/status', self.status, RELIABLE)]
        self._clients = {}
        # Created before the node starts, so that the node has matched their reply readers by
        # the first request (a reply to an unmatched reader is dropped by Fast DDS).
        for service_type, name in ((SetTarget, 'set_target'), (Trigger, 'clear_target'),
                                   (ClearTarget, 'clear_target_id'),
                                   (SelectTargetAtPoint, 'select_target_at_point'),
                                   (GetState, 'tracker_node/get_state'),
                                   (ChangeState, 'tracker_node/change_state'),
                                   (SetParameters, 'tracker_node/set_parameters'),
                                   (GetParameters, 'tracker_node/get_parameters')):
            self.service(service_type, name)

    def service(self, service_type, name: str):
        key = (service_type, name)
        if key not in self._clients:
            self._clients[key] = self.client.node.create_client(service_type, f'{self.ns}/{name}')
        return self._clients[key]

    def call(self, service_type, name: str, request, timeout: float = CALL_TIMEOUT_S):
        client = self.service(service_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f'{self.ns}/{name} is not offered'
        future = client.call_async(request)
        return self.client.wait(future, timeout, f'{self.ns}/{name}')

    def set_target(self, box, stamp: Time | None = None, target_id='', label=''):
        x, y, w, h = box
        request = SetTarget.Request(x=float(x), y=float(y), width=float(w), height=float(h),
                                    target_id=target_id, label=label)
        if stamp is not None:
            request.stamp = stamp
        return self.call(SetTarget, 'set_target', request)

    def select_at_point(self, x, y, stamp: Time | None = None, target_id='', label=''):
        request = SelectTargetAtPoint.Request(x=float(x), y=float(y), target_id=target_id,
                                              label=label)
        if stamp is not None:
            request.stamp = stamp
        return self.call(SelectTargetAtPoint, 'select_target_at_point', request)

    def clear_target(self):
        return self.call(Trigger, 'clear_target', Trigger.Request())

    def clear_target_id(self, target_id: str):
        return self.call(ClearTarget, 'clear_target_id', ClearTarget.Request(target_id=target_id))

    def set_parameters(self, **values):
        """Set parameters atomically one per request; returns the SetParametersResult list."""
        parameters = [Parameter(name=name, value=parameter_value(value))
                      for name, value in values.items()]
        reply = self.call(SetParameters, 'tracker_node/set_parameters',
                          SetParameters.Request(parameters=parameters), timeout=120.0)
        return reply.results

    def lifecycle_state(self, timeout: float = CALL_TIMEOUT_S) -> str:
        reply = self.call(GetState, 'tracker_node/get_state', GetState.Request(), timeout=timeout)
        return reply.current_state.label

    def change_state(self, label: str = '', transition_id: int = 0,
                     timeout: float = CALL_TIMEOUT_S) -> bool:
        """Request a lifecycle transition by label (or, without one, by id)."""
        request = ChangeState.Request()
        request.transition.label, request.transition.id = label, transition_id
        return self.call(ChangeState, 'tracker_node/change_state', request, timeout).success

    def get_parameters(self, *names):
        """The current values of ``names`` (python values) as the node reports them."""
        reply = self.call(GetParameters, 'tracker_node/get_parameters',
                          GetParameters.Request(names=list(names)))
        return [python_value(value) for value in reply.values]

    def latest_status(self, timeout: float = 5.0):
        """The newest status the node published from now on (a frame's or the heartbeat)."""
        self.status.clear()
        status = self.status.wait_for(lambda m: True, timeout)
        assert status is not None, f'no status within {timeout} s:\n{self.process.log()[-3000:]}'
        return status

    def rss_bytes(self) -> int:
        """Resident memory of the node process."""
        for line in Path(f'/proc/{self.process.process.pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
        raise AssertionError('no VmRSS in /proc status')

    def wait_active(self, timeout: float = NODE_START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        client = self.service(GetState, 'tracker_node/get_state')
        while time.monotonic() < deadline:
            assert self.process.alive(), f'tracker_node exited during start:\n{self.process.log()}'
            # While the node configures itself (torch import, model load) on a busy machine its
            # lifecycle services answer late: the whole start budget applies, not one call's.
            # A reply can still be lost: Fast DDS drops a response when the server has not yet
            # matched the client's reply reader ("client will not receive response"), so ask
            # again every few seconds.
            remaining = min(5.0, max(1.0, deadline - time.monotonic()))
            try:
                if (client.wait_for_service(timeout_sec=0.5)
                        and self.lifecycle_state(timeout=remaining) == 'active'):
                    return
            except AssertionError:
                continue
        raise AssertionError(f'tracker_node did not become active:\n{self.process.log()}')

    def publish(self, message) -> None:
        self.camera.publish(message)

    def output_for(self, collector: 'Collector', index: int, timeout: float = 15.0):
        """The message of ``collector`` (detections or status) for frame ``index``."""
        wanted = stamp_to_ns(stamp_of(index))
        message = collector.wait_for(lambda m: stamp_to_ns(m.header.stamp) == wanted, timeout)
        assert message is not None, f'no output for frame {index}:\n{self.process.log()[-3000:]}'
        return message

    def deliver(self, message, collector: 'Collector', timeout: float = 30.0,
                resend_s: float = 1.0):
        """Publish ``message`` and wait for ``collector``'s output for its stamp, publishing it
        again every ``resend_s``: the camera topic is best effort, so one frame may be lost in
        transport; a node that processes none of the copies still fails."""
        wanted = stamp_to_ns(message.header.stamp)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.publish(message)
            output = collector.wait_for(lambda m: stamp_to_ns(m.header.stamp) == wanted,
                                        min(resend_s, max(0.0, deadline - time.monotonic())))
            if output is not None:
                return output
        raise AssertionError(f'no output for the frame stamped {wanted} ns after '
                             f'{timeout:.0f} s:\n{self.process.log()[-3000:]}')

    def detection_for(self, index: int, timeout: float = 15.0):
        return self.output_for(self.detections, index, timeout)

    def status_for(self, index: int, timeout: float = 15.0):
        return self.output_for(self.status, index, timeout)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> bool:
        """Whether ``text`` appears in the node's log within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.process.log():
                return True
            time.sleep(0.05)
        return False

    def stream(self, scene: MovingTargetScene, indices, rate_hz: float = 30.0) -> None:
        """Publish scene frames with stamp_of(index), paced at ``rate_hz``."""
        period = 1.0 / rate_hz
        start = time.monotonic()
        for count, index in enumerate(indices):
            self.publish(image_message(scene.frame(index), stamp_of(index)))
            delay = start + (count + 1) * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def close(self) -> None:
        node = self.client.node
        for subscription in self._subscriptions:
            node.destroy_subscription(subscription)
        for client in self._clients.values():
            node.destroy_client(client)
        node.destroy_publisher(self.camera)


def python_value(value: ParameterValue):
    return {ParameterType.PARAMETER_BOOL: value.bool_value,
            ParameterType.PARAMETER_INTEGER: value.integer_value,
            ParameterType.PARAMETER_DOUBLE: value.double_value,
            ParameterType.PARAMETER_STRING: value.string_value}.get(value.type)


def parameter_value(value) -> ParameterValue:
    if isinstance(value, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    if isinstance(value, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    if isinstance(value, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(value))


class RosClient:
    """An rclpy node spinning in a background thread of the test process."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f'test_client_{os.getpid()}', context=self.context)
        self.executor = OnceSubmittedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def wait(self, future, timeout: float, what: str):
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        assert done.wait(timeout), f'no reply from {what} within {timeout} s'
        return future.result()

    def shutdown(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self._thread.join(5)


class TrackerFleet:
    """Starts tracker_nodes in namespaces of their own and stops them all on close()."""

    def __init__(self, client: RosClient, log_dir: Path, label: str):
        self.client, self.log_dir = client, log_dir
        self.label = re.sub(r'_+', '_', re.sub(r'\W', '_', label)[:24]).strip('_')
        self._started: list[tuple[TrackerProcess, NodeLink]] = []

    def start(self, profile='uav', compressed=False, camera_qos=BEST_EFFORT, wait=True,
              **parameters) -> NodeLink:
        if compressed:
            parameters['input_transport'] = 'compressed'
        namespace = f'/t_{self.label}_{len(self._started)}_{os.getpid()}'
        process = TrackerProcess(namespace, self.log_dir / f'{namespace[1:]}.log', profile,
                                 parameters)
        link = NodeLink(self.client, process, compressed, camera_qos)
        self._started.append((process, link))
        if wait:
            link.wait_active()
        return link

    def close(self) -> None:
        for process, link in self._started:
            link.close()
            process.stop()
        self._started.clear()
