"""The rclpy side of replay and record: publishing a bag's frames to a tracker node and
collecting what it publishes.

Messages are handled serialized: frames go out as CDR bytes (re-stamped with the time they are
published, so that ``receipt - stamp`` is the end-to-end latency) and detections / status come in
as CDR bytes, which are written to the record bag unchanged and parsed with the bag typestore.

A multi-target bag (:mod:`siam_tracking_ros.bag.convert`) is replayed with all its targets: each
is set on the first frame through the stamped ``set_target`` under its own target id, after the
node's ``max_targets`` parameter was checked to allow that many, and every detection array
received is recorded once per target (the detection with its id, or no box).
"""

from __future__ import annotations

import queue
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rosbags.rosbag2 import Writer

from siam_tracking_ros.bag import convert, messages, reader, runlog
from siam_tracking_ros.bag.typestore import (COMPRESSED_IMAGE_TYPE, DETECTIONS_TYPE, IMAGE_TYPE,
                                             STATUS_TYPE, project_typestore)
from siam_tracking_ros.ros.frames import NANOSECONDS, stamp_to_ns

# CDR encapsulation identifiers (first two bytes of a serialized message).
_CDR_BIG_ENDIAN = b'\x00\x00'
_CDR_LITTLE_ENDIAN = b'\x00\x01'
# A message starting with std_msgs/Header has header.stamp (int32 sec, uint32 nanosec) right
# after the 4-byte encapsulation header.
_STAMP_OFFSET = 4


# How long to wait for the node's answer to the first frame before publishing it again.
FIRST_FRAME_ECHO_S = 1.0
# How long the graph may take to list a discovered service under its node: service names are
# known as soon as the service is, their node's entry can follow later.
NODE_OF_SERVICE_WAIT_S = 5.0


class ReplayError(RuntimeError):
    """The replay could not run to completion (node absent, not answering, refused the target)."""


def restamp_cdr(data: bytes, stamp_ns: int) -> bytes:
    """A copy of a serialized header-first message with ``header.stamp`` set to ``stamp_ns``."""
    kind = bytes(data[:2])
    if kind not in (_CDR_BIG_ENDIAN, _CDR_LITTLE_ENDIAN):
        raise ReplayError(f'frame is not plain CDR (encapsulation {kind.hex()}); cannot restamp it')
    layout = '<iI' if kind == _CDR_LITTLE_ENDIAN else '>iI'
    buffer = bytearray(data)
    struct.pack_into(layout, buffer, _STAMP_OFFSET, stamp_ns // NANOSECONDS, stamp_ns % NANOSECONDS)
    return bytes(buffer)


def publishable_frame(frame: reader.BagFrame) -> bytes:
    """CDR of a ``sensor_msgs/Image`` for a bag frame; compressed frames are decoded to bgr8,
    the only image type the node subscribes to."""
    if frame.msgtype == IMAGE_TYPE:
        return frame.data
    if frame.msgtype != COMPRESSED_IMAGE_TYPE:
        raise ReplayError(f'frame {frame.index} has type {frame.msgtype}, not an image')
    store = project_typestore()
    compressed = store.deserialize_cdr(frame.data, COMPRESSED_IMAGE_TYPE)
    image = messages.raw_image_message(store, messages.image_to_bgr(compressed), frame.stamp_ns,
                                       compressed.header.frame_id)
    return bytes(store.serialize_cdr(image, IMAGE_TYPE))


def prefetch(iterable, depth: int = 4):
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead (keeps decoding off
    the publishing schedule). Errors of the producer are raised in the consumer."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    finished = object()
    stop = threading.Event()

    def produce():
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(finished)
        except BaseException as error:  # handed over to the consumer below
            items.put(error)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is finished:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _interface_types():
    """The generated rclpy classes the node's topics and services use."""
    try:
        from sensor_msgs.msg import Image
        from std_srvs.srv import Trigger
        from vision_msgs.msg import Detection2DArray
        from siam_tracking_ros.msg import TrackerStatus
        from siam_tracking_ros.srv import SetTarget
    except ImportError as error:
        raise ReplayError(
            f'the ROS interfaces are not importable ({error}); build them with colcon and '
            'source install/setup.sh') from error
    return Image, Detection2DArray, TrackerStatus, SetTarget, Trigger


def _join(namespace: str, name: str) -> str:
    namespace = '/' + namespace.strip('/')
    return f'{namespace.rstrip("/")}/{name}'


def received_detections(message, receipt_ns: int,
                        targets: tuple[str, ...] = ()) -> list[runlog.ReceivedDetection]:
    """The rows a received ``Detection2DArray`` is recorded as: one with its first detection's
    box (none when empty) for a single target; with ``targets``, one per target id with the box
    of the detection carrying that id, none when the array has no such detection."""
    stamp_ns = stamp_to_ns(message.header.stamp)

    def row(detection, target_id: str = '') -> runlog.ReceivedDetection:
        x, y, w, h = (messages.detection_box(detection) if detection is not None
                      else (float('nan'),) * 4)
        score = messages.detection_score(detection) if detection is not None else float('nan')
        return runlog.ReceivedDetection(stamp_ns=stamp_ns, receipt_ns=receipt_ns, x=x, y=y, w=w,
                                        h=h, score=score, target_id=target_id)

    if not targets:
        return [row(message.detections[0] if len(message.detections) else None)]
    found = messages.detections_by_target(message)
    return [row(found.get(target_id), target_id) for target_id in targets]


class Recorder:
    """Collects a node's detections and status (serialized) with their receipt times."""

    def __init__(self, namespace: str, targets: tuple[str, ...] = ()):
        self.namespace = namespace
        # Ids of a multi-target run: each array is recorded as one row per target.
        self.targets = tuple(targets)
        self.detections: list[runlog.ReceivedDetection] = []
        self.statuses: list[runlog.ReceivedStatus] = []
        self.raw: list[tuple[str, int, bytes]] = []  # (topic, receipt_ns, cdr)
        self._store = project_typestore()
        self._changed = threading.Condition()

    @property
    def detections_topic(self) -> str:
        return _join(self.namespace, 'detections')

    @property
    def status_topic(self) -> str:
        return _join(self.namespace, 'status')

    def on_detections(self, data: bytes) -> None:
        receipt_ns = time.time_ns()
        message = self._store.deserialize_cdr(data, DETECTIONS_TYPE)
        rows = received_detections(message, receipt_ns, self.targets)
        with self._changed:
            self.detections.extend(rows)
            self.raw.append((self.detections_topic, receipt_ns, bytes(data)))
            self._changed.notify_all()

    def on_status(self, data: bytes) -> None:
        receipt_ns = time.time_ns()
        message = self._store.deserialize_cdr(data, STATUS_TYPE)
        status = runlog.ReceivedStatus(
            stamp_ns=stamp_to_ns(message.header.stamp), receipt_ns=receipt_ns,
            state=int(message.state), score=float(message.score), fps=float(message.fps),
            latency_ms=float(message.latency_ms), frames_skipped=int(message.frames_skipped))
        with self._changed:
            self.statuses.append(status)
            self.raw.append((self.status_topic, receipt_ns, bytes(data)))
            self._changed.notify_all()

    def wait_for_stamp(self, stamp_ns: int, timeout_s: float, include_status: bool = False) -> bool:
        """Wait until a detection (or, optionally, a status) with ``stamp_ns`` has arrived."""
        def arrived():
            if any(d.stamp_ns == stamp_ns for d in reversed(self.detections)):
                return True
            return include_status and any(s.stamp_ns == stamp_ns for s in reversed(self.statuses))
        with self._changed:
            return self._changed.wait_for(arrived, timeout=timeout_s)

    def snapshot(self):
        with self._changed:
            return list(self.detections), list(self.statuses), list(self.raw)

    def write(self, run_dir: Path, storage: str = 'mcap') -> None:
        """Write detections.csv, status.csv and the record bag into ``run_dir``."""
        detections, statuses, raw = self.snapshot()
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        runlog.write_detections(run_dir, detections, by_target=bool(self.targets))
        runlog.write_statuses(run_dir, statuses)
        write_record_bag(run_dir / runlog.RECORD_BAG, raw,
                         {self.detections_topic: DETECTIONS_TYPE, self.status_topic: STATUS_TYPE},
                         storage)


def write_record_bag(bag_path: Path, raw, topic_types: dict, storage: str) -> None:
    """Write serialized messages ``(topic, receipt_ns, cdr)`` as a Jazzy rosbag2."""
    if bag_path.exists():
        raise ReplayError(f'{bag_path} exists already; choose a new output folder')
    store = project_typestore()
    writer = Writer(bag_path, version=convert.JAZZY_BAG_VERSION,
                    storage_plugin=convert.STORAGES[storage])
    writer.open()
    connections = {topic: writer.add_connection(topic, msgtype, typestore=store)
                   for topic, msgtype in topic_types.items()}
    for topic, receipt_ns, data in sorted(raw, key=lambda item: item[1]):
        writer.write(connections[topic], receipt_ns, data)
    writer.close()


class RosEndpoint:
    """An rclpy context, node and spinning thread of its own, torn down by ``close``."""

    def __init__(self, node_name: str):
        self.context = Context()
        # args=[]: the command line belongs to siamtrack; rcl would read 'name:=value' options
        # such as --node-param's as remapping rules of this node.
        rclpy.init(args=[], context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(node_name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:  # the executor raises once the context shuts down under it
            if self.context.ok():
                raise

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)
        self._spinner.join(timeout=2.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def attach_recorder(endpoint: RosEndpoint, recorder: Recorder) -> list:
    """Subscribe ``recorder`` to the node's detections and status; returns the subscriptions."""
    _, Detection2DArray, TrackerStatus, _, _ = _interface_types()
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                     reliability=ReliabilityPolicy.RELIABLE)
    return [endpoint.node.create_subscription(Detection2DArray, recorder.detections_topic,
                                              recorder.on_detections, qos, raw=True),
            endpoint.node.create_subscription(TrackerStatus, recorder.status_topic,
                                              recorder.on_status, qos, raw=True)]


def wait_until(condition, timeout_s: float, poll_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


@dataclass(frozen=True)
class ReplayOptions:
    namespace: str = '/tracker'
    mode: str = 'lockstep'
    rate: float = 1.0
    # Longest wait for the node to appear (it loads its model first).
    connect_timeout_s: float = 60.0
    # Longest wait for one frame's detection in lockstep (and for the last one in realtime).
    frame_timeout_s: float = 10.0
    # Consecutive lockstep timeouts after which the node is taken to have stopped answering.
    max_consecutive_timeouts: int = 3
    tracker_label: str = ''
    target_id: str = ''
    storage: str = 'mcap'

    def __post_init__(self):
        if self.mode not in runlog.MODES:
            raise ReplayError(f"mode must be one of {', '.join(runlog.MODES)}, got '{self.mode}'")
        if not self.rate > 0:
            raise ReplayError(f'rate must be positive, got {self.rate}')
        for name in ('connect_timeout_s', 'frame_timeout_s'):
            if not getattr(self, name) > 0:
                raise ReplayError(f'{name} must be positive, got {getattr(self, name)}')
        if self.max_consecutive_timeouts < 1:
            raise ReplayError('max_consecutive_timeouts must be at least 1')


class Replayer:
    """Publishes one bag to one node and records its answers (one run); ``targets``: the ids
    of a multi-target bag (empty for a single target)."""

    def __init__(self, endpoint: RosEndpoint, options: ReplayOptions, log=print,
                 targets: tuple[str, ...] = ()):
        Image, _, _, SetTarget, Trigger = _interface_types()
        self.endpoint, self.options, self.log = endpoint, options, log
        self._set_target_type = SetTarget
        self.recorder = Recorder(options.namespace, targets)
        self._subscriptions = attach_recorder(endpoint, self.recorder)
        node = endpoint.node
        image_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                               reliability=ReliabilityPolicy.RELIABLE)
        self.image_topic = _join(options.namespace, 'image')
        self.publisher = node.create_publisher(Image, self.image_topic, image_qos)
        self.set_target_client = node.create_client(SetTarget, _join(options.namespace, 'set_target'))
        self.clear_target_client = node.create_client(Trigger, _join(options.namespace, 'clear_target'))
        self.published: list[runlog.PublishedFrame] = []

    def close(self) -> None:
        """Remove this replay's publisher, subscriptions and clients from the shared node."""
        node = self.endpoint.node
        for subscription in self._subscriptions:
            node.destroy_subscription(subscription)
        node.destroy_publisher(self.publisher)
        node.destroy_client(self.set_target_client)
        node.destroy_client(self.clear_target_client)

    # -- connection ------------------------------------------------------------------------
    def wait_for_node(self, health_check=None) -> None:
        """Wait for the node's service and topics; ``health_check()`` (optional) raises when
        the node's process has died, so a crash is reported at once rather than at timeout."""
        timeout = self.options.connect_timeout_s
        deadline = time.monotonic() + timeout
        while not self.set_target_client.wait_for_service(timeout_sec=0.5):
            if health_check is not None:
                health_check()
            if time.monotonic() >= deadline:
                raise ReplayError(
                    f'no tracker node answers at {self.options.namespace}: service '
                    f'{self.set_target_client.srv_name} did not appear within {timeout:g} s')
        if not wait_until(lambda: self.publisher.get_subscription_count() > 0, timeout):
            raise ReplayError(f'nothing subscribes to {self.image_topic} within {timeout:g} s')
        if not wait_until(lambda: self.endpoint.node.count_publishers(
                self.recorder.detections_topic) > 0, timeout):
            raise ReplayError(f'nothing publishes {self.recorder.detections_topic} within '
                              f'{timeout:g} s')

    def _call(self, client, request, what: str):
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(self.options.frame_timeout_s):
            client.remove_pending_request(future)
            raise ReplayError(f'{what}: the node did not answer within '
                              f'{self.options.frame_timeout_s:g} s')
        return future.result()

    # -- frames ----------------------------------------------------------------------------
    def publish(self, frame: reader.BagFrame, data: bytes) -> runlog.PublishedFrame:
        stamp_ns = time.time_ns()
        self.publisher.publish(restamp_cdr(data, stamp_ns))
        published = runlog.PublishedFrame(index=frame.index, source_stamp_ns=frame.stamp_ns,
                                          stamp_ns=stamp_ns, publish_ns=time.time_ns())
        self.published.append(published)
        return published

    def node_max_targets(self) -> int:
        """The ``max_targets`` parameter of the node offering the replay's ``set_target``."""
        from rcl_interfaces.msg import ParameterType
        from rcl_interfaces.srv import GetParameters

        node_name = self._target_node_name()
        client = self.endpoint.node.create_client(
            GetParameters, _join(self.options.namespace, f'{node_name}/get_parameters'))
        try:
            if not client.wait_for_service(timeout_sec=self.options.frame_timeout_s):
                raise ReplayError(f'cannot read max_targets of the node at '
                                  f'{self.options.namespace}: {client.srv_name} is not offered')
            reply = self._call(client, GetParameters.Request(names=['max_targets']),
                               'get_parameters max_targets')
        finally:
            self.endpoint.node.destroy_client(client)
        if len(reply.values) != 1 or reply.values[0].type != ParameterType.PARAMETER_INTEGER:
            raise ReplayError(f'the node at {self.options.namespace} ({node_name}) has no '
                              'integer max_targets parameter')
        return int(reply.values[0].integer_value)

    def _target_node_name(self) -> str:
        """Name of the node in the replay's namespace that offers its set_target service."""
        graph = self.endpoint.node
        namespace = '/' + self.options.namespace.strip('/')
        service = self.set_target_client.srv_name
        found: list[str] = []

        def offering_node_found() -> bool:
            found.extend(name for name, node_namespace in graph.get_node_names_and_namespaces()
                         if node_namespace == namespace and service in dict(
                             graph.get_service_names_and_types_by_node(name, node_namespace)))
            return bool(found)

        if not wait_until(offering_node_found, NODE_OF_SERVICE_WAIT_S, poll_s=0.1):
            raise ReplayError(f'no node in {namespace} offers {service}')
        return found[0]

    def check_target_room(self, sequence: str) -> None:
        """Refuse, before any frame goes out, a bag with more targets than the node takes."""
        count = len(self.recorder.targets)
        if count < 2:  # max_targets is at least 1
            return
        limit = self.node_max_targets()
        if count > limit:
            raise ReplayError(too_many_targets(sequence, count, limit,
                                               f'the node at {self.options.namespace}'))

    def start_target(self, frame: reader.BagFrame, data: bytes, box) -> None:
        """:meth:`start_targets` for the one target of a single-target bag (id
        ``options.target_id``)."""
        self.start_targets(frame, data, {self.options.target_id: box})

    def start_targets(self, frame: reader.BagFrame, data: bytes, boxes_by_target: dict) -> None:
        """Publish the first frame and initialise every target on it through ``set_target``
        (stamped with that frame, each under its target id, in the order given).

        The node answers every frame it takes in (an empty array while idle), so once the
        first frame's answer is back the frame is in the node's history and the targets can be
        set on it; no later frame is published before they all are, so none has to catch up.
        A node still loading its model answers nothing: the frame is published again until
        the connection timeout.
        """
        deadline = time.monotonic() + self.options.connect_timeout_s
        while time.monotonic() < deadline:
            published = self.publish(frame, data)
            if not self.recorder.wait_for_stamp(published.stamp_ns, FIRST_FRAME_ECHO_S,
                                                include_status=True):
                self.published.pop()
                continue
            for target_id, box in boxes_by_target.items():
                self._set_target(published.stamp_ns, target_id, box)
            return
        raise ReplayError(f'the node at {self.options.namespace} did not take in the first frame '
                          f'within {self.options.connect_timeout_s:g} s')

    def _set_target(self, stamp_ns: int, target_id: str, box) -> None:
        request = self._set_target_type.Request()
        request.x, request.y, request.width, request.height = (float(v) for v in box)
        request.target_id = target_id
        request.label = self.options.tracker_label
        request.stamp = _time_message(stamp_ns)
        reply = self._call(self.set_target_client, request, 'set_target')
        if not reply.success:
            named = f' {target_id!r}' if self.recorder.targets else ''
            raise ReplayError(f'the node refused the target{named} {tuple(box)}: {reply.message}')

    def clear_target(self) -> None:
        _, _, _, _, Trigger = _interface_types()
        try:
            self._call(self.clear_target_client, Trigger.Request(), 'clear_target')
        except ReplayError as error:
            self.log(f'warning: {error}')

    def run_lockstep(self, frames) -> None:
        consecutive = 0
        for frame, data in frames:
            published = self.publish(frame, data)
            if self.recorder.wait_for_stamp(published.stamp_ns, self.options.frame_timeout_s):
                consecutive = 0
                continue
            consecutive += 1
            self.log(f'frame {frame.index}: no detection within {self.options.frame_timeout_s:g} s')
            if consecutive >= self.options.max_consecutive_timeouts:
                raise ReplayError(f'the node at {self.options.namespace} stopped answering '
                                  f'({consecutive} frames in a row without a detection)')

    def run_realtime(self, frames) -> None:
        start = None
        first_stamp = None
        last = None
        for frame, data in frames:
            if start is None:
                start, first_stamp = time.monotonic(), frame.stamp_ns
            due = start + (frame.stamp_ns - first_stamp) / NANOSECONDS / self.options.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            last = self.publish(frame, data)
        if last is not None:
            self.recorder.wait_for_stamp(last.stamp_ns, self.options.frame_timeout_s)


def _time_message(stamp_ns: int):
    from builtin_interfaces.msg import Time
    return Time(sec=stamp_ns // NANOSECONDS, nanosec=stamp_ns % NANOSECONDS)


def too_many_targets(sequence: str, count: int, limit: int, node: str) -> str:
    """Why a sequence cannot be replayed to a node taking fewer targets than it has."""
    return (f'sequence {sequence} has {count} targets but max_targets of {node} is {limit}; '
            f'set max_targets to {count} or more (bag eval: --node-param '
            f'max_targets:={count}), or select fewer of its targets (--sequences '
            f'{sequence}/<target>,...)')


def initial_box(bag: reader.BagInfo, box=None) -> tuple[float, float, float, float]:
    """The box to initialise on: ``box`` when given, else the bag's first ground-truth box."""
    if box is not None:
        values = tuple(float(v) for v in box)
        if len(values) != 4 or not values[2] > 0 or not values[3] > 0:
            raise ReplayError(f'initial box must be x,y,w,h with positive size, got {box}')
        return values
    first = reader.read_ground_truth(bag)[0]
    if not messages.box_is_known(first):
        raise ReplayError(f'bag {bag.path} has no ground-truth box on its first frame; '
                          'give one with --box x,y,w,h')
    return tuple(float(v) for v in first)


def initial_boxes(bag: reader.BagInfo, box=None) -> dict[str, tuple[float, float, float, float]]:
    """Each target's box to initialise on, by target id: a multi-target bag's first-frame
    ground truth, or for a single-target bag ``{'': initial_box(bag, box)}``."""
    if not bag.targets:
        return {'': initial_box(bag, box)}
    if box is not None:
        raise ReplayError(f'bag {bag.path} holds {len(bag.targets)} targets, each set on its '
                          'first-frame ground truth; --box sets the one target of a '
                          'single-target bag')
    firsts = {target_id: truth[0]
              for target_id, truth in reader.read_target_ground_truth(bag).items()}
    unknown = [target_id for target_id, first in firsts.items()
               if not messages.box_is_known(first)]
    if unknown:
        raise ReplayError(f'bag {bag.path}: target(s) {", ".join(unknown)} have no ground-truth '
                          'box on the first frame, where every target is set')
    return {target_id: tuple(float(v) for v in first) for target_id, first in firsts.items()}


def replay_bag(bag_path: Path, run_dir: Path, options: ReplayOptions, box=None,
               endpoint: RosEndpoint | None = None, log=print, progress=None,
               health_check=None) -> runlog.RunInfo:
    """Replay one bag to the node at ``options.namespace`` and write the run folder."""
    bag = reader.bag_info(Path(bag_path))
    init_boxes = initial_boxes(bag, box)
    run_dir = Path(run_dir)
    if (run_dir / runlog.RUN_FILE).exists():
        raise ReplayError(f'{run_dir} already holds a run; choose a new output folder')
    info = runlog.RunInfo(bag=str(bag.path.resolve()), sequence=bag.sequence,
                          tracker=options.tracker_label or options.namespace.strip('/'),
                          namespace=options.namespace, mode=options.mode, rate=options.rate,
                          init_box=next(iter(init_boxes.values())),
                          frame_timeout_s=options.frame_timeout_s,
                          targets=tuple(init_boxes.items()) if bag.targets else ())
    own_endpoint = endpoint is None
    endpoint = endpoint or RosEndpoint(f'siamtrack_replay_{int(time.time() * 1000) % 10**9}')
    try:
        replayer = Replayer(endpoint, options, log, bag.targets)
        try:
            replayer.wait_for_node(health_check)
            replayer.check_target_room(bag.sequence)
            frames = prefetch((frame, publishable_frame(frame)) for frame in reader.iter_frames(bag))
            first_frame, first_data = next(frames)
            if bag.targets:
                replayer.start_targets(first_frame, first_data, init_boxes)
            else:
                replayer.start_target(first_frame, first_data, init_boxes[''])
            counted = _counting(frames, bag.frame_count, progress)
            if options.mode == 'lockstep':
                replayer.run_lockstep(counted)
            else:
                replayer.run_realtime(counted)
            replayer.clear_target()
        finally:
            run_dir.mkdir(parents=True, exist_ok=True)
            runlog.write_frames(run_dir, replayer.published)
            replayer.recorder.write(run_dir, options.storage)
            replayer.close()
        runlog.write_info(run_dir, info)
    finally:
        if own_endpoint:
            endpoint.close()
    return info


def _counting(frames, total: int, progress):
    for frame, data in frames:
        yield frame, data
        if progress is not None:
            progress(frame.index + 1, total)


def record(namespace: str, out_dir: Path, duration_s: float | None = None,
           storage: str = 'mcap') -> int:
    """Record a node's detections and status until ``duration_s`` passes (or Ctrl-C); writes
    the CSV files and the record bag into ``out_dir`` and returns the number of messages."""
    out_dir = Path(out_dir)
    if (out_dir / runlog.RECORD_BAG).exists():
        raise ReplayError(f'{out_dir} already holds a recording; choose a new output folder')
    recorder = Recorder(namespace)
    with RosEndpoint(f'siamtrack_record_{int(time.time() * 1000) % 10**9}') as endpoint:
        attach_recorder(endpoint, recorder)
        try:
            deadline = None if duration_s is None else time.monotonic() + duration_s
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
        finally:
            recorder.write(out_dir, storage)
    return len(recorder.raw)
