"""The ``tracker_node``: a lifecycle node that tracks targets in a camera stream.

Targets are keyed by their id: set_target / select_target_at_point with a new id add one (up to
``max_targets``), with a tracked id replace it; clear_target_id stops one, clear_target all.
Every frame, all targets go through one batched tracker pass (core.multi_target).

configure loads the model, activate subscribes and publishes, deactivate stops tracking
(keeping the model), cleanup unloads it. With ``autostart`` (default) the node configures and
activates itself, so a plain ``ros2 run`` tracks. A transition the current state does not
offer is refused (success=False), the node staying where it is.

Threads: the image callback only counts the message, refuses frames over ``max_pixels`` and
files the rest into the history and the newest-frame slot; a worker thread decodes and tracks
whatever frame is newest (frames replaced meanwhile count as skipped), so the node never falls
behind the camera. After a target request on an older frame the worker catches that target up
over the frames received since, within ``catch_up_max_frames`` / ``catch_up_max_s``, one frame
at a time between the live frames the other targets keep tracking. Target services, the clear
services (with the status heartbeat), images, and lifecycle/parameter services run in four
callback groups of a MultiThreadedExecutor, so none waits behind another: a target request
waits at most for the frame being tracked.

Every dropped frame and refused request is counted in ``status`` and warned about at most
every few seconds per cause (reporting.ThrottledReporter).
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
from rclpy._rclpy_pybind11 import RCLError
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.parameter_service import ParameterService
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_policy_name_from_kind, qos_profile_sensor_data)
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2DArray

from siam_tracking_ros.core.device import set_cpu_threads
from siam_tracking_ros.core.multi_target import MultiTargetTracker
from siam_tracking_ros.core.registry import build_tracker
from siam_tracking_ros.msg import TrackerStatus
from siam_tracking_ros.ros.engine import EngineLimits, Target, TrackingEngine
from siam_tracking_ros.ros.executor import OnceSubmittedExecutor
from siam_tracking_ros.ros.frames import (Frame, FrameHistory, LatestFrameSlot, StampGapCounter,
                                          format_stamp, stamp_to_ns)
from siam_tracking_ros.ros.image_codec import (ImageConversionError, compressed_image_to_bgr,
                                               message_size, raw_image_to_bgr)
from siam_tracking_ros.ros.messages import (debug_image_message, detections_message,
                                            heartbeat_status, status_message)
from siam_tracking_ros.ros.parameters import (ENGINE_PARAMETERS, HISTORY_PARAMETERS,
                                              MODEL_PARAMETERS, PARAMETERS, THRESHOLD_PARAMETERS,
                                              check_parameters)
from siam_tracking_ros.ros.point_box import propose_box
from siam_tracking_ros.ros.reporting import Counters, ThrottledReporter
from siam_tracking_ros.ros.requests import (TargetRequestError, check_stamp, check_target_id,
                                            describe_ids)
from siam_tracking_ros.srv import ClearTarget, SelectTargetAtPoint, SetTarget

# Loading a ResNet-50 checkpoint on a slow CPU takes seconds; this bounds a stuck load.
MODEL_LOAD_TIMEOUT_S = 300.0
WORKER_POLL_S = 0.2
# Longest wait before main() sees a SIGINT / SIGTERM (see stop_requested_by_signals).
SIGNAL_POLL_S = 0.2
# A warning per cause at most this often; every occurrence is counted in status.
WARNING_THROTTLE_S = 5.0
# Without a processed frame for this long, status is published anyway (counters, state).
HEARTBEAT_S = 1.0


def image_qos(reliable: bool) -> QoSProfile:
    """Best effort, keep only the newest frame (REP-2003 sensor data); reliable on request."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1, durability=DurabilityPolicy.VOLATILE,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)


OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.RELIABLE)
# Requests wait in this queue while one is served: the default depth of 10 would drop the
# eleventh of a burst of concurrent clients unanswered.
SERVICE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)


class RateMeter:
    """Events per second over the last second."""

    def __init__(self):
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self) -> float:
        with self._lock:
            self._times.append(time.monotonic())
        return self.rate()

    def rate(self) -> float:
        now = time.monotonic()
        with self._lock:
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


class AllOrNothingParameterService(ParameterService):
    """rclpy's parameter services, except that a SetParameters request is applied as one
    atomic change: rclpy sets its parameters one by one, so of two thresholds that are only
    valid together the first was refused and the second applied. Here the request is checked
    as a whole against the state it leads to; every result then says the same."""

    def _set_parameters_callback(self, request, response):
        node = self._get_node()
        try:
            result = node.set_parameters_atomically(
                [Parameter.from_parameter_msg(p) for p in request.parameters])
        except Exception as error:  # undeclared name, bad value type: refuse the whole request
            result = SetParametersResult(successful=False, reason=str(error))
        if not result.successful and len(request.parameters) > 1:
            result.reason = f'none of the {len(request.parameters)} set: {result.reason}'
        response.results = [SetParametersResult(successful=result.successful,
                                                reason=result.reason)
                            for _ in request.parameters]
        return response

    def _set_parameters_atomically_callback(self, request, response):
        try:
            return super()._set_parameters_atomically_callback(request, response)
        except Exception as error:  # a bad request must not end the node
            response.result = SetParametersResult(successful=False, reason=str(error))
            return response


def _transition_matches(request_transition, transition_id: int, label: str) -> bool:
    """rclpy resolves a ChangeState request by its label when it has one, else by its id."""
    if request_transition.label:
        return request_transition.label == label
    return request_transition.id == transition_id


class TrackerNode(LifecycleNode):
    def __init__(self, node_name: str = 'tracker_node', **kwargs):
        super().__init__(node_name, start_parameter_services=False, **kwargs)
        self._parameter_service = AllOrNothingParameterService(self)
        for name, spec in PARAMETERS.items():
            self.declare_parameter(name, spec.default, ParameterDescriptor(
                description=spec.description, read_only=spec.read_only))
        self._values = {name: self.get_parameter(name).value for name in PARAMETERS}
        self._counters = Counters()
        self._reporter = ThrottledReporter(self.get_logger().warning, self._counters,
                                           WARNING_THROTTLE_S)
        self._history = FrameHistory(self._values['history_size'],
                                     self._values['history_max_bytes'])
        self._slot = LatestFrameSlot()
        self._stamp_gaps = StampGapCounter()
        self._engine: TrackingEngine | None = None
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix='model_loader')
        self._rate = RateMeter()
        self._active = False
        self._worker: threading.Thread | None = None
        self._subscription = None
        self._heartbeat = None
        self._last_status_ns = 0
        self._last_frame_id = ''
        self._outputs: dict = {}
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._target_group = MutuallyExclusiveCallbackGroup()
        self._control_group = MutuallyExclusiveCallbackGroup()
        self._create_services()
        self._guard_transitions()
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # -- setup -----------------------------------------------------------------------------
    def _create_services(self) -> None:
        targets, control = self._target_group, self._control_group
        self.create_service(SetTarget, 'set_target', self._on_set_target,
                            qos_profile=SERVICE_QOS, callback_group=targets)
        self.create_service(SelectTargetAtPoint, 'select_target_at_point',
                            self._on_select_target_at_point, qos_profile=SERVICE_QOS,
                            callback_group=targets)
        self.create_service(Trigger, 'clear_target', self._on_clear_target,
                            qos_profile=SERVICE_QOS, callback_group=control)
        self.create_service(ClearTarget, 'clear_target_id', self._on_clear_target_id,
                            qos_profile=SERVICE_QOS, callback_group=control)

    def _guard_transitions(self) -> None:
        """rclpy 7.1's change_state service lets RCLError ('Transition is not registered')
        escape into the executor for a transition the current state does not offer, which ends
        the process. Such a request is answered with success=False instead."""
        service = self._service_change_state
        change_state = service.callback

        def guarded(request, response):
            current = self._state_machine.current_state[1]
            offered = self._state_machine.available_transitions
            if not any(_transition_matches(request.transition, t[0], t[1]) for t in offered):
                wanted = request.transition.label or f'id {request.transition.id}'
                labels = ', '.join(sorted({t[1] for t in offered})) or 'none'
                self._reporter.report('transition_refused', (
                    f"lifecycle transition '{wanted}' refused: not offered in state '{current}' "
                    f'(offered: {labels})'))
                response.success = False
                return response
            try:
                return change_state(request, response)
            except RCLError as error:
                self._reporter.report('transition_refused',
                                      f'lifecycle transition refused by rcl: {error}')
                response.success = False
                return response

        service.callback = guarded

    def _build_tracker(self, values: dict):
        """A tracker from parameter values; raises ValueError (or the loader's error)."""
        return build_tracker(
            values['tracker'], weights=values['weights'] or None, device=values['device'],
            precision=values['precision'], half=values['half'],
            lost_threshold=values['lost_threshold'],
            recover_threshold=values['recover_threshold'])

    def _build_targets_tracker(self, values: dict) -> tuple[MultiTargetTracker, str]:
        """The multi-target tracker for parameter values (its targets share the one network
        built here, so a model that cannot load fails now) and the device it runs on."""
        tracker = MultiTargetTracker(functools.partial(self._build_tracker, values))
        return tracker, str(tracker.prototype.device)

    def _subscribe(self) -> None:
        compressed = self._values['input_transport'] == 'compressed'
        message_type, topic = ((CompressedImage, 'image/compressed') if compressed
                               else (Image, 'image'))
        decode = compressed_image_to_bgr if compressed else raw_image_to_bgr

        def on_image(message):
            if not self._active:
                return
            received_ns = time.monotonic_ns()
            self._counters.add('frames_received')
            missing = self._stamp_gaps.observe(stamp_to_ns(message.header.stamp))
            if missing:
                self._counters.add('frames_missing', missing)
            if self._too_large(message):
                return
            frame = Frame(message, decode, received_ns)
            self._history.add(frame)
            self._slot.put(frame)

        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)
        self._subscription = self.create_subscription(
            message_type, topic, on_image, image_qos(self._values['reliable_qos']),
            callback_group=self._image_group, event_callbacks=events)

    def _too_large(self, message) -> bool:
        """Refuse (and count) a frame over max_pixels before it is stored or decoded."""
        size = message_size(message)
        limit = self._values['max_pixels']
        if size is None or size[0] * size[1] <= limit:
            return False
        self._reporter.report('too_large', (
            f'dropping frame {format_stamp(stamp_to_ns(message.header.stamp))}: '
            f'{size[0]}x{size[1]} has more than max_pixels ({limit}) pixels'))
        return True

    def _on_incompatible_qos(self, event) -> None:
        policy = qos_policy_name_from_kind(event.last_policy_kind)
        offered = 'reliable' if self._values['reliable_qos'] else 'best effort'
        self._reporter.report(
            'incompatible_qos',
            f"a publisher on '{self._subscription.topic_name}' offers QoS incompatible with this "
            f'{offered} subscription (policy {policy}); no frames will arrive from it. Cameras '
            'publish best effort: keep reliable_qos false for them')

    def _engine_limits(self, values: dict) -> EngineLimits:
        return EngineLimits(**{name: values[name] for name in ENGINE_PARAMETERS})

    # -- lifecycle -------------------------------------------------------------------------
    @logged_transition
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        reason = check_parameters(self._values, self._values)
        if reason is not None:
            self.get_logger().error(f'cannot configure: {reason}')
            return TransitionCallbackReturn.FAILURE
        try:
            tracker, device = self._build_targets_tracker(self._values)
        except Exception as error:  # any load failure must leave the node unconfigured, alive
            self.get_logger().error(f"could not load tracker '{self._values['tracker']}': {error}")
            return TransitionCallbackReturn.FAILURE
        self._engine = TrackingEngine(tracker, self._values['tracker'],
                                      self._engine_limits(self._values), self._reporter.report,
                                      device=device)
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
        self._join_worker()
        self._engine.resume()
        self._history.clear()  # a frame filed while deactivating
        self._slot.reopen()
        self._active = True
        self._worker = threading.Thread(target=self._work, name='tracking_worker', daemon=True)
        self._worker.start()
        # Subscription and heartbeat live until the node is destroyed and idle while inactive:
        # destroying a subscription from a transition races with the executor building its wait
        # set (rclpy raises InvalidHandle for the subscription's event handler and the process
        # ends).
        if self._subscription is None:
            self._subscribe()
        if self._heartbeat is None:
            self._heartbeat = self.create_timer(HEARTBEAT_S, self._on_heartbeat,
                                                callback_group=self._control_group)
        return super().on_activate(state)

    @logged_transition
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_tracking()
        return super().on_deactivate(state)

    @logged_transition
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._join_worker()
        self._unload()
        return super().on_cleanup(state)

    @logged_transition
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_tracking()
        self._join_worker()
        self._unload()
        return super().on_shutdown(state)

    def _stop_tracking(self) -> None:
        """Stop tracking and publishing without waiting for the frame being tracked: the
        suspended engine drops that frame's result and refuses the target requests still
        waiting for the tracker, and the worker ends after its tracker call (joined by the next
        transition that needs it gone). Waiting here made deactivate answer only after up to
        two tracker passes, seconds with many targets on a busy CPU."""
        self._active = False
        self._slot.close()
        if self._engine is not None:
            self._engine.suspend()
        self._history.clear()

    def _join_worker(self) -> None:
        if self._worker is not None:
            self._worker.join()
            self._worker = None

    def _unload(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        self._engine = None

    def close(self) -> None:
        """Stop the worker and the model loader; for process exit."""
        self._stop_tracking()
        self._join_worker()
        self._loader.shutdown(wait=False, cancel_futures=True)

    # -- per frame -------------------------------------------------------------------------
    def _work(self) -> None:
        # torch keeps its thread count per thread: set it where the network runs.
        set_cpu_threads(self._values['torch_threads'])
        while self._active:
            engine = self._engine
            item = engine.next_catch_up() if engine is not None else None
            if item is None:
                frame = self._slot.take(WORKER_POLL_S)
            else:
                self._process(engine, *item)
                # A target catching up takes turns with the live frames of the others: one
                # history frame, then the newest frame if one is waiting.
                frame = self._slot.take(0.0) if engine.has_live_targets() else None
            if frame is not None and engine is not None:
                self._process(engine, frame, None)

    def _process(self, engine: TrackingEngine, frame: Frame, catching_up) -> None:
        try:
            update = engine.process(frame, catching_up)
            if update is not None:
                self._publish(update, engine)
        except Exception:  # whatever happens on one frame, the worker keeps serving
            self._reporter.report('worker_error',
                                  f'processing a frame failed:\n{traceback.format_exc()}')
        finally:
            frame.release_image()

    def _counter_values(self, engine: TrackingEngine) -> dict:
        values = self._counters.snapshot()
        values['frames_skipped'] = self._slot.skipped
        values['catch_up_pending'] = engine.catch_up_pending
        return values

    def _publish(self, update, engine: TrackingEngine) -> None:
        """Publish the frame's messages, unless the targets changed since it was tracked (the
        engine checks that and publishes under its state lock)."""
        latency_ms = (self.get_clock().now().nanoseconds - update.frame.stamp_ns) / 1e6
        outputs = self._outputs
        debug = outputs['debug_image']
        messages = [(outputs['detections'], detections_message(update)),
                    (outputs['status'], status_message(
                        update, engine.tracker_name, engine.device, self._rate.tick(),
                        latency_ms, **self._counter_values(engine)))]
        if self._values['publish_debug_image'] and debug.get_subscription_count() > 0:
            messages.append((debug, debug_image_message(update)))

        def publish(_update):
            for publisher, message in messages:
                publisher.publish(message)
        if engine.publish_if_current(update, publish):
            self._last_status_ns = time.monotonic_ns()
            self._last_frame_id = update.frame.header.frame_id

    def _on_heartbeat(self) -> None:
        engine, status = self._engine, self._outputs.get('status')
        if engine is None or status is None or not self._active:
            return
        if time.monotonic_ns() - self._last_status_ns < HEARTBEAT_S * 1e9:
            return
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self._last_frame_id)
        counters = self._counters.snapshot()
        counters['frames_skipped'] = self._slot.skipped

        def publish(targets):
            counters['catch_up_pending'] = sum(target.catch_up_pending for target in targets)
            status.publish(heartbeat_status(header, targets, engine.tracker_name, engine.device,
                                            self._rate.rate(), **counters))
        engine.publish_heartbeat(publish)
        self._last_status_ns = time.monotonic_ns()

    # -- services --------------------------------------------------------------------------
    def _frame_for(self, stamp) -> tuple[TrackingEngine, Frame, list[Frame]]:
        """The engine, the frame a request refers to (the newest for a zero stamp, else the
        stamped one) and the frames received after it."""
        engine = self._engine
        if engine is None or not self._active:
            raise ValueError('the node is not active (configure and activate it first)')
        stamp_ns = check_stamp(stamp.sec, stamp.nanosec)
        frame = self._history.newest() if stamp_ns == 0 else self._history.find(stamp_ns)
        if frame is None and stamp_ns == 0:
            raise ValueError(f"no frame received yet on '{self._image_topic()}': a target needs "
                             'a frame to initialise on')
        if frame is None:
            raise ValueError(
                f'no frame with stamp {format_stamp(stamp_ns)} in the history '
                f'({self._history.describe_range()}); use a stamp from that range or zero for '
                'the newest frame')
        return engine, frame, self._history.received_after(frame)

    def _image_topic(self) -> str:
        return self._subscription.topic_name if self._subscription is not None else 'image'

    def _refuse(self, response, service: str, reason) -> object:
        response.success = False
        response.message = f'{service} refused: {reason}'
        self._reporter.report('request_refused', response.message)
        return response

    def _start_target(self, engine: TrackingEngine, frame: Frame, later: list, box,
                      target_id: str, label: str) -> str:
        """Initialise on ``frame``; the reply's message. Raises ValueError when refused."""
        target = Target(target_id, label or self._values['target_label'])
        try:
            engine.start(frame, box, target, later)
        except ImageConversionError as error:
            raise ValueError(f'frame {format_stamp(frame.stamp_ns)} cannot be decoded: '
                             f'{error}') from error
        finally:
            frame.release_image()  # the history keeps the message, not a decoded copy
        message = (f'tracking from frame {format_stamp(frame.stamp_ns)} with '
                   f"'{engine.tracker_name}'")
        tracked = engine.target_ids
        if tracked != [target_id]:
            message += f' (target {target_id!r}; {len(tracked)} targets: {describe_ids(tracked)})'
        if later:
            limits = engine.limits
            message += (f'; catching up over the {len(later)} frames received since (at most '
                        f'{limits.catch_up_max_frames} frames, {limits.catch_up_max_s:g} s)')
        return message

    def _on_set_target(self, request, response):
        try:
            engine, frame, later = self._frame_for(request.stamp)
            response.message = self._start_target(
                engine, frame, later, (request.x, request.y, request.width, request.height),
                request.target_id, request.label)
        except ValueError as error:  # TargetRequestError, undecodable frame, inactive node
            return self._refuse(response, 'set_target', error)
        response.success, response.frame_stamp = True, frame.header.stamp
        return response

    def _on_select_target_at_point(self, request, response):
        try:
            engine, frame, later = self._frame_for(request.stamp)
            try:
                image = frame.image()
            except ImageConversionError as error:
                raise ValueError(f'frame {format_stamp(frame.stamp_ns)} cannot be decoded: '
                                 f'{error}') from error
            proposal = propose_box(image, request.x, request.y, self._values['point_box_size'])
            self._start_target(engine, frame, later, proposal.box, request.target_id,
                               request.label)
        except ValueError as error:
            return self._refuse(response, 'select_target_at_point', error)
        response.success, response.frame_stamp = True, frame.header.stamp
        response.box_x, response.box_y, response.box_width, response.box_height = proposal.box
        response.message = f'tracking a {proposal.method} box around ({request.x:g}, {request.y:g})'
        return response

    def _on_clear_target(self, _request, response):
        engine = self._engine
        if engine is None:
            return self._refuse(response, 'clear_target', 'the node is not configured')
        cleared = engine.clear()
        response.success = True
        if len(cleared) > 1:
            response.message = f'{len(cleared)} targets cleared: {describe_ids(cleared)}'
        else:
            response.message = 'target cleared' if cleared else 'no target was set'
        return response

    def _on_clear_target_id(self, request, response):
        engine = self._engine
        if engine is None:
            return self._refuse(response, 'clear_target_id', 'the node is not configured')
        try:
            engine.remove(check_target_id(request.target_id))
        except TargetRequestError as error:
            return self._refuse(response, 'clear_target_id', error)
        left = engine.target_ids
        response.success = True
        response.message = (f'target {request.target_id!r} cleared; '
                            + (f'tracking {describe_ids(left)}' if left else 'no target left'))
        return response

    # -- parameters ------------------------------------------------------------------------
    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in PARAMETERS}
        reason = check_parameters(changes, self._values)
        if reason is None:
            reason = self._apply(changes)
        if reason is not None:
            self._reporter.report('parameters_refused',
                                  f'parameter change refused, nothing changed: {reason}')
            return SetParametersResult(successful=False, reason=reason)
        self._values.update(changes)
        return SetParametersResult(successful=True)

    def _apply(self, changes: dict) -> str | None:
        """Put valid changes into effect; the reason when that failed (nothing changed then).
        The model swap, the only step that can fail, goes first."""
        merged = {**self._values, **changes}
        engine = self._engine
        model_changed = any(merged[name] != self._values[name] for name in MODEL_PARAMETERS)
        if engine is not None and model_changed:
            reason = self._swap_model(engine, merged)
            if reason is not None:
                return reason
        elif engine is not None and any(name in changes for name in THRESHOLD_PARAMETERS):
            engine.set_thresholds(merged['lost_threshold'], merged['recover_threshold'])
        if any(name in changes for name in HISTORY_PARAMETERS):
            self._history.resize(merged['history_size'], merged['history_max_bytes'])
        if engine is not None and any(name in changes for name in ENGINE_PARAMETERS):
            engine.limits = self._engine_limits(merged)
        return None

    def _swap_model(self, engine: TrackingEngine, values: dict) -> str | None:
        """Load the new model in the background while the old one keeps tracking; swap on
        success, keep the old one and return the reason on failure."""
        future = self._loader.submit(self._build_targets_tracker, values)
        try:
            tracker, device = future.result(timeout=MODEL_LOAD_TIMEOUT_S)
        except Exception as error:  # unknown name, bad weights file, unavailable device...
            return f"could not load tracker '{values['tracker']}': {error}"
        engine.swap_tracker(tracker, values['tracker'], self._history.newest(), device)
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
    executor = OnceSubmittedExecutor(num_threads=4)
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
