"""A camera + ground-station client of one tracker_node, for the demo and the benchmark.

Runs its own rclpy context and executor thread, so it can live beside other ROS code.
"""

from __future__ import annotations

import threading
import time

import rclpy
from lifecycle_msgs.srv import GetState
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from siam_tracking_ros.msg import TrackerStatus
from siam_tracking_ros.ros.executor import OnceSubmittedExecutor
from siam_tracking_ros.ros.frames import stamp_to_ns

RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                      reliability=ReliabilityPolicy.RELIABLE)


class StampedInbox:
    """Messages keyed by header stamp, with their arrival time (time.time_ns())."""

    def __init__(self):
        self._items: dict[int, tuple[int, object]] = {}
        self._condition = threading.Condition()

    def __call__(self, message) -> None:
        with self._condition:
            self._items[stamp_to_ns(message.header.stamp)] = (time.time_ns(), message)
            self._condition.notify_all()

    def wait(self, stamp_ns: int, timeout: float):
        """(arrival_ns, message) for ``stamp_ns``, or None after ``timeout`` seconds."""
        with self._condition:
            self._condition.wait_for(lambda: stamp_ns in self._items, timeout)
            return self._items.get(stamp_ns)

    def all(self) -> list:
        with self._condition:
            return [self._items[key] for key in sorted(self._items)]


class TrackerClient:
    def __init__(self, namespace: str, name: str = 'tracker_client'):
        self.namespace = namespace.rstrip('/')
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.camera = self.node.create_publisher(Image, f'{self.namespace}/image', RELIABLE)
        self.detections, self.status = StampedInbox(), StampedInbox()
        self.node.create_subscription(Detection2DArray, f'{self.namespace}/detections',
                                      self.detections, RELIABLE)
        self.node.create_subscription(TrackerStatus, f'{self.namespace}/status', self.status,
                                      RELIABLE)
        self._executor = OnceSubmittedExecutor(num_threads=2, context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def call(self, service_type, name: str, request, timeout: float = 30.0):
        client = self.node.create_client(service_type, f'{self.namespace}/{name}')
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service '{client.srv_name}' is not offered")
            future = client.call_async(request)
            done = threading.Event()
            future.add_done_callback(lambda _: done.set())
            if not done.wait(timeout):
                raise TimeoutError(f"no reply from '{client.srv_name}' within {timeout} s")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def wait_active(self, process, timeout: float = 120.0) -> None:
        """Wait until the node's lifecycle state is 'active'; fail early if ``process`` died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f'tracker_node exited with code {process.returncode}')
            try:
                reply = self.call(GetState, 'tracker_node/get_state', GetState.Request(), 1.0)
            except TimeoutError:
                continue
            if reply.current_state.label == 'active':
                return
            time.sleep(0.2)
        raise TimeoutError(f'tracker_node in {self.namespace} did not become active')

    def close(self) -> None:
        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(5)
