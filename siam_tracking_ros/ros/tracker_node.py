"""The ``tracker_node``: a lifecycle node that tracks one target in a camera stream.

configure loads the model, activate subscribes and publishes, deactivate stops tracking
(keeping the model), cleanup unloads it. With ``autostart`` (default) the node configures and
activates itself, so a plain ``ros2 run`` tracks.

Threads: the image callback only files the message into the history and the newest-frame slot;
a worker thread decodes and tracks whatever frame is newest (frames replaced meanwhile count as
skipped), so the node never falls behind the camera. Services and parameter changes run in
their own callback groups of a MultiThreadedExecutor and are answered while a frame is tracked.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import rclpy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_policy_name_from_kind, qos_profile_sensor_data)
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2DArray

from siam_tracking_ros.core.device import set_cpu_threads
from siam_tracking_ros.core.registry import build_tracker
from siam_tracking_ros.msg import TrackerStatus
from siam_tracking_ros.ros.engine import Target, TrackingEngine
from siam_tracking_ros.ros.frames import (Frame, FrameHistory, LatestFrameSlot, format_stamp,
                                          stamp_to_ns)
from siam_tracking_ros.ros.image_codec import (ImageConversionError, compressed_image_to_bgr,
                                               raw_image_to_bgr)
from siam_tracking_ros.ros.messages import (debug_image_message, detections_message,
                                            status_message)
from siam_tracking_ros.ros.parameters import (MODEL_PARAMETERS, PARAMETERS, THRESHOLD_PARAMETERS,
                                              check_parameters)
from siam_tracking_ros.ros.point_box import propose_box
from siam_tracking_ros.ros.reporting import OncePerCause
from siam_tracking_ros.srv import SelectTargetAtPoint, SetTarget

# Loading a ResNet-50 checkpoint on a slow CPU takes seconds; this bounds a stuck load.
MODEL_LOAD_TIMEOUT_S = 300.0
WORKER_POLL_S = 0.2
# Longest wait before main() sees a SIGINT / SIGTERM (see stop_requested_by_signals).
SIGNAL_POLL_S = 0.2


def image_qos(reliable: bool) -> QoSProfile:
    """Best effort, keep only the newest frame (REP-2003 sensor data); reliable on request."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1, durability=DurabilityPolicy.VOLATILE,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)


OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.RELIABLE)


class RateMeter:
    """Events per second over the last second."""

    def __init__(self):
        self._times: deque[float] = deque()

    def tick(self) -> float:
        now = time.monotonic()
        self._times.append(now)
        while self._times and now - self._times[0] > 1.0:
            self._times.popleft()
        return float(len(self._times))


def logged_transition(transition):
    """rclpy turns an exception in a transition into a silent ERROR; log it first."""
    @functools.wraps(transition)
    def run(node, state):
        try:
            return transition(node, state)
        except Exception:
            node.get_logger().error(
                f'{transition.__name__} failed:\n{traceback.format_exc()}')
            return TransitionCallbackReturn.ERROR
    return run


class TrackerNode(LifecycleNode):
    def __init__(self, node_name: str = 'tracker_node', **kwargs):
        super().__init__(node_name, **kwargs)
        for name, spec in PARAMETERS.items():
            self.declare_parameter(name, spec.default, ParameterDescriptor(
                description=spec.description, read_only=spec.read_only))
        self._values = {name: self.get_parameter(name).value for name in PARAMETERS}
        self._once = OncePerCause(self.get_logger().warning)
        self._history = FrameHistory(self._values['history_size'])
        self._slot = LatestFrameSlot()
        self._engine: TrackingEngine | None = None
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix='model_loader')
        self._rate = RateMeter()
        self._active = False
        self._worker: threading.Thread | None = None
        self._subscription = None
        self._outputs: dict = {}
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._service_group = ReentrantCallbackGroup()
        self._create_services()
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # -- setup -----------------------------------------------------------------------------
    def _create_services(self) -> None:
        group = self._service_group
        self.create_service(SetTarget, 'set_target', self._on_set_target, callback_group=group)
        self.create_service(Trigger, 'clear_target', self._on_clear_target, callback_group=group)
        self.create_service(SelectTargetAtPoint, 'select_target_at_point',
                            self._on_select_target_at_point, callback_group=group)

    def _build_tracker(self, values: dict):
        """A tracker from parameter values; raises ValueError (or the loader's error)."""
        return build_tracker(
            values['tracker'], weights=values['weights'] or None, device=values['device'],
            precision=values['precision'], half=values['half'],
            lost_threshold=values['lost_threshold'],
            recover_threshold=values['recover_threshold'])

    def _subscribe(self) -> None:
        compressed = self._values['input_transport'] == 'compressed'
        message_type, topic = ((CompressedImage, 'image/compressed') if compressed
                               else (Image, 'image'))
        decode = compressed_image_to_bgr if compressed else raw_image_to_bgr

        def on_image(message):
            frame = Frame(message, decode, time.monotonic_ns())
            self._history.add(frame)
            self._slot.put(frame)

        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)
        self._subscription = self.create_subscription(
            message_type, topic, on_image, image_qos(self._values['reliable_qos']),
            callback_group=self._image_group, event_callbacks=events)

    def _on_incompatible_qos(self, event) -> None:
        policy = qos_policy_name_from_kind(event.last_policy_kind)
        offered = 'reliable' if self._values['reliable_qos'] else 'best effort'
        self._once.report(
            'incompatible_qos',
            f"a publisher on '{self._subscription.topic_name}' offers QoS incompatible with this "
            f'{offered} subscription (policy {policy}); no frames will arrive from it. Cameras '
            'publish best effort: keep reliable_qos false for them')

    # -- lifecycle -------------------------------------------------------------------------
    @logged_transition
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            tracker = self._build_tracker(self._values)
        except Exception as error:  # any load failure must leave the node unconfigured, alive
            self.get_logger().error(f"could not load tracker '{self._values['tracker']}': {error}")
            return TransitionCallbackReturn.FAILURE
        self._engine = TrackingEngine(tracker, self._values['tracker'])
        self._outputs = {
            'detections': self.create_lifecycle_publisher(Detection2DArray, 'detections',
                                                          OUTPUT_QOS),
            'status': self.create_lifecycle_publisher(TrackerStatus, 'status', OUTPUT_QOS),
            'debug_image': self.create_lifecycle_publisher(Image, 'debug_image',
                                                           qos_profile_sensor_data),
        }
        self.get_logger().info(
            f"loaded tracker '{self._engine.tracker_name}' on {self._engine.device}")
        return super().on_configure(state)

    @logged_transition
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._slot.reopen()
        self._active = True
        self._worker = threading.Thread(target=self._work, name='tracking_worker', daemon=True)
        self._worker.start()
        self._subscribe()
        return super().on_activate(state)

    @logged_transition
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_tracking()
        return super().on_deactivate(state)

    @logged_transition
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unload()
        return super().on_cleanup(state)

    @logged_transition
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_tracking()
        self._unload()
        return super().on_shutdown(state)

    def _stop_tracking(self) -> None:
        self._active = False
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        self._slot.close()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        if self._engine is not None:
            self._engine.clear()
        self._history.clear()

    def _unload(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        self._engine = None

    def close(self) -> None:
        """Stop the worker and the model loader; for process exit."""
        self._stop_tracking()
        self._loader.shutdown(wait=False, cancel_futures=True)

    # -- per frame -------------------------------------------------------------------------
    def _work(self) -> None:
        # torch keeps its thread count per thread: set it where the network runs.
        set_cpu_threads(self._values['torch_threads'])
        while self._active:
            frame = self._slot.take(WORKER_POLL_S)
            if frame is not None and self._engine is not None:
                self._process(frame)

    def _process(self, frame: Frame) -> None:
        engine = self._engine
        try:
            frame.image()
            update = engine.step(frame)
        except ImageConversionError as error:
            self._once.report(error.cause, f'dropping frame: {error}')
            return
        except Exception as error:  # a tracker failure on one frame must not stop the node
            self._once.report('tracker_error', f'tracking failed, target cleared: {error}')
            engine.clear()
            return
        if update is not None:
            self._publish(update, engine)

    def _publish(self, update, engine: TrackingEngine) -> None:
        latency_ms = (self.get_clock().now().nanoseconds - update.frame.stamp_ns) / 1e6
        outputs = self._outputs
        outputs['detections'].publish(detections_message(update))
        outputs['status'].publish(status_message(
            update, engine.tracker_name, engine.device, self._rate.tick(), latency_ms,
            self._slot.skipped))
        debug = outputs['debug_image']
        if self._values['publish_debug_image'] and debug.get_subscription_count() > 0:
            debug.publish(debug_image_message(update))

    # -- services --------------------------------------------------------------------------
    def _frame_for(self, stamp) -> Frame:
        """The frame a request refers to: the newest for a zero stamp, else the stamped one."""
        if self._engine is None or not self._active:
            raise ValueError('the node is not active (configure and activate it first)')
        stamp_ns = stamp_to_ns(stamp)
        frame = self._history.newest() if stamp_ns == 0 else self._history.find(stamp_ns)
        if frame is None and stamp_ns == 0:
            raise ValueError(f"no frame received yet on '{self._image_topic()}': a target needs "
                             'a frame to initialise on')
        if frame is None:
            raise ValueError(
                f'no frame with stamp {format_stamp(stamp_ns)} in the history '
                f'({self._history.describe_range()}); use a stamp from that range or zero for '
                'the newest frame')
        return frame

    def _image_topic(self) -> str:
        return self._subscription.topic_name if self._subscription is not None else 'image'

    def _start_target(self, frame: Frame, box, target_id: str, label: str) -> None:
        target = Target(target_id, label or self._values['target_label'])
        self._engine.start(frame, box, target, self._history)

    def _on_set_target(self, request, response):
        try:
            frame = self._frame_for(request.stamp)
            self._start_target(frame, (request.x, request.y, request.width, request.height),
                               request.target_id, request.label)
        except ValueError as error:  # includes ImageConversionError for an undecodable frame
            response.success, response.message = False, f'set_target refused: {error}'
            return response
        response.success, response.frame_stamp = True, frame.header.stamp
        response.message = (f'tracking from frame {format_stamp(frame.stamp_ns)} with '
                            f"'{self._engine.tracker_name}'")
        return response

    def _on_select_target_at_point(self, request, response):
        try:
            frame = self._frame_for(request.stamp)
            proposal = propose_box(frame.image(), request.x, request.y,
                                   self._values['point_box_size'])
            self._start_target(frame, proposal.box, request.target_id, request.label)
        except ValueError as error:
            response.success = False
            response.message = f'select_target_at_point refused: {error}'
            return response
        response.success, response.frame_stamp = True, frame.header.stamp
        response.box_x, response.box_y, response.box_width, response.box_height = proposal.box
        response.message = f'tracking a {proposal.method} box around ({request.x:g}, {request.y:g})'
        return response

    def _on_clear_target(self, _request, response):
        if self._engine is None:
            response.success, response.message = False, 'the node is not configured'
            return response
        had_target = self._engine.target is not None
        self._engine.clear()
        response.success = True
        response.message = 'target cleared' if had_target else 'no target was set'
        return response

    # -- parameters ------------------------------------------------------------------------
    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in PARAMETERS}
        reason = check_parameters(changes, self._values)
        if reason is None:
            reason = self._apply(changes)
        if reason is not None:
            self.get_logger().warning(f'parameter change rejected: {reason}')
            return SetParametersResult(successful=False, reason=reason)
        self._values.update(changes)
        return SetParametersResult(successful=True)

    def _apply(self, changes: dict) -> str | None:
        """Put valid changes into effect; the reason when that failed (nothing changed then)."""
        merged = {**self._values, **changes}
        engine = self._engine
        model_changed = any(merged[name] != self._values[name] for name in MODEL_PARAMETERS)
        if engine is not None and model_changed:
            reason = self._swap_model(engine, merged)
            if reason is not None:
                return reason
        elif engine is not None and any(name in changes for name in THRESHOLD_PARAMETERS):
            engine.set_thresholds(merged['lost_threshold'], merged['recover_threshold'])
        if 'history_size' in changes:
            self._history.resize(merged['history_size'])
        return None

    def _swap_model(self, engine: TrackingEngine, values: dict) -> str | None:
        """Load the new model in the background while the old one keeps tracking; swap on
        success, keep the old one and return the reason on failure."""
        future = self._loader.submit(self._build_tracker, values)
        try:
            tracker = future.result(timeout=MODEL_LOAD_TIMEOUT_S)
        except Exception as error:  # unknown name, bad weights file, unavailable device...
            return f"could not load tracker '{values['tracker']}': {error}"
        engine.swap_tracker(tracker, values['tracker'], self._history.newest())
        self.get_logger().info(f"switched to tracker '{values['tracker']}' on {engine.device}")
        return None


def stop_requested_by_signals() -> threading.Event:
    """An event set by SIGINT / SIGTERM, which then raise nothing.

    Under ``ros2 launch`` Ctrl-C reaches the node twice (the terminal signals the whole process
    group, then launch signals the node): a KeyboardInterrupt raised by the second one would cut
    the shutdown short with a traceback. Here every signal only asks for the clean shutdown.
    """
    requested = threading.Event()

    def request(_signum, _frame) -> None:
        requested.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request)
    return requested


def main(args=None) -> None:
    stop = stop_requested_by_signals()
    # rclpy's own handlers would raise KeyboardInterrupt on SIGINT; the event replaces them.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = TrackerNode()
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        if node.get_parameter('autostart').value and not stop.is_set():
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS and not stop.is_set():
                node.trigger_activate()
        # Python runs signal handlers between spins only: wake up at least every SIGNAL_POLL_S.
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SIGNAL_POLL_S)
    except ExternalShutdownException:
        pass
    finally:
        node.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
