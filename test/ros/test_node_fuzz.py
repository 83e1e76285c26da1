"""A seeded, bounded fuzz of tracker_node over DDS, then a real sequence tracked box for box.

For ROUNDS rounds, while a camera thread streams good frames mixed with malformed ones (random
encodings, sizes, steps and truncations; declared sizes over max_pixels; frames of another
size), two target clients send random set_target / select_target_at_point / clear_target
requests (NaN, inf, huge, negative, out-of-image boxes; zero, recent, never-sent, future and
invalid stamps) and a control client sends random parameter sets (valid, invalid, wrong type,
read-only) and lifecycle transitions (offered or not, by label or id). It asserts that the
process never exits, every request is answered within 2 s (a configure, which loads the model,
within 30 s), no reply says success for a request
that was invalid, the lifecycle state and the parameters are what the replies said, and, after
each round, that a set_target's reply agrees with the state the node then publishes. Finally
the node tracks the first frames of a real aerial sequence (../shared/uav_dev; without it, a
synthetic one from eval/synth.py) exactly as the same tracker run in this process does.
"""

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest

harness = pytest.importorskip('ros_harness', reason='rclpy or the built ROS interfaces are '
                                                    'missing: run `make setup`')

from builtin_interfaces.msg import Time  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from siam_tracking_ros.core.boxes import iou, one_based_to_zero_based  # noqa: E402
from siam_tracking_ros.core.registry import build_tracker  # noqa: E402
from siam_tracking_ros.eval.datasets import load_uav123  # noqa: E402
from siam_tracking_ros.eval.synth import SynthConfig, generate_sequence  # noqa: E402
from siam_tracking_ros.ros.engine import STATE_OF_TRACK  # noqa: E402
from siam_tracking_ros.ros.frames import stamp_to_ns  # noqa: E402
from siam_tracking_ros.ros.requests import (TargetRequestError, check_box,  # noqa: E402
                                            check_target_id)

pytestmark = pytest.mark.dds
stamp_of = harness.stamp_of
SEED = 20260
ROUNDS = 3
ROUND_S = 4.0
ANSWER_S = 2.0
# configure loads the model: that request's own work, not a wait behind another request.
CONFIGURE_ANSWER_S = 30.0
UAV_DEV = Path(__file__).resolve().parents[2].parent / 'shared' / 'uav_dev'
SEQUENCE, SEQUENCE_FRAMES = 'S0601', 20
# Node settings the final check relies on (uav profile thresholds; fp32 for exact comparison).
PROFILE_THRESHOLDS = {'lost_threshold': 0.15, 'recover_threshold': 0.35}
MAX_PIXELS = 2_000_000
# transition id -> (label, from state, to state); the shutdown transitions are left out: a
# finalized node cannot come back for the next round.
TRANSITIONS = {1: ('configure', 'unconfigured', 'inactive'), 2: ('cleanup', 'inactive',
               'unconfigured'), 3: ('activate', 'inactive', 'active'),
               4: ('deactivate', 'active', 'inactive')}


# -- what the camera sends -------------------------------------------------------------------
def random_malformed_image(rng, index):
    encodings = ['rgb8', 'bgr8', 'mono8', 'mono16', 'yuv422', 'rgba8', 'bayer_rggb8', '', '32FC1']
    height, width = int(rng.integers(0, 40)), int(rng.integers(0, 40))
    step = max(0, width * int(rng.integers(0, 5)) + int(rng.integers(-3, 4)))
    size = max(0, height * step + int(rng.integers(-20, 20)))
    message = Image(height=height, width=width, encoding=str(rng.choice(encodings)), step=step)
    message.data.frombytes(rng.integers(0, 256, size=size, dtype=np.uint8).tobytes())
    message.header.stamp = stamp_of(index)
    return message


def declared_huge_image(index):
    """A raw header declaring 100000 x 100000 pixels with a few bytes of data."""
    message = Image(height=100_000, width=100_000, encoding='bgr8', step=300_000)
    message.data.frombytes(bytes(64))
    message.header.stamp = stamp_of(index)
    return message


class FuzzCamera:
    """Streams scene frames at 30 Hz; while ``hostile`` is set, a third of the messages are
    malformed or of another size. Records the size of every well-formed frame by stamp."""

    def __init__(self, node, scene, rng):
        self.node, self.scene, self.rng = node, scene, rng
        self.shapes: dict[int, tuple[int, int]] = {}
        self.hostile = threading.Event()
        self._stop = threading.Event()
        self.index = 100_000
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            index = self.index = self.index + 1
            draw = self.rng.random() if self.hostile.is_set() else 1.0
            if draw < 0.2:
                message = random_malformed_image(self.rng, index)
            elif draw < 0.25:
                message = declared_huge_image(index)
            else:
                image = self.scene.frame(index)
                if draw < 0.33:
                    image = np.ascontiguousarray(image[::2, ::2])
                self.shapes[stamp_to_ns(stamp_of(index))] = image.shape[:2]
                message = harness.image_message(image, stamp_of(index))
            self.node.publish(message)
            self._stop.wait(1 / 30)

    def recent_stamp(self, back: int) -> Time:
        return stamp_of(self.index - back)

    def stop(self):
        self._stop.set()
        self._thread.join(5)


# -- what the clients send -------------------------------------------------------------------
def absurd_or_plausible(rng, low, high):
    if rng.random() < 0.4:
        return float(rng.choice([0.0, -1.0, 0.3, 1e9, -1e9, 1e150, math.nan, math.inf, -math.inf]))
    return float(rng.uniform(low, high))


def random_stamp(rng, camera):
    draw = rng.random()
    if draw < 0.4:
        return Time()
    if draw < 0.7:
        return camera.recent_stamp(int(rng.integers(1, 40)))
    if draw < 0.8:
        return camera.recent_stamp(-int(rng.integers(10, 10_000)))  # the future
    if draw < 0.9:
        return Time(sec=int(rng.integers(0, 2000)), nanosec=int(rng.integers(10**9, 2**32)))
    return Time(sec=-int(rng.integers(1, 2**31)), nanosec=0)


def stamp_is_valid(stamp: Time) -> bool:
    return stamp.sec >= 0 and stamp.nanosec < 10**9


class Log:
    """Thread-safe record of every exchange and of the problems found."""

    def __init__(self):
        self.calls, self.slowest, self.problems = 0, 0.0, []
        self._lock = threading.Lock()

    def call(self, link, service_type, name, request, what, limit_s=ANSWER_S):
        client = link.service(service_type, name)
        start = time.monotonic()
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        answered = done.wait(limit_s)
        seconds = time.monotonic() - start
        with self._lock:
            self.calls += 1
            if limit_s == ANSWER_S:
                self.slowest = max(self.slowest, seconds)
            if not answered:
                self.problems.append(f'no answer within {limit_s} s: {what}')
        if not answered:
            done.wait(30.0)  # keep the request's future alive until it resolves
            return None
        return future.result()

    def problem(self, text):
        with self._lock:
            self.problems.append(text)


def check_target_reply(reply, request, camera, kind, log):
    """A success must be for a valid request: valid stamp, the named frame, a box that passes
    the node's rules on that frame (set_target) or contains the point (select)."""
    if reply is None or not reply.success:
        if reply is not None and not reply.message:
            log.problem(f'{kind} refused without a reason')
        return
    frame_ns = stamp_to_ns(reply.frame_stamp)
    shape = camera.shapes.get(frame_ns)
    wanted_ns = stamp_to_ns(request.stamp) if stamp_is_valid(request.stamp) else None
    if not stamp_is_valid(request.stamp) or shape is None:
        log.problem(f'{kind} succeeded on an invalid stamp or unknown frame: {request}')
        return
    if wanted_ns and wanted_ns != frame_ns:
        log.problem(f'{kind} named frame {wanted_ns} but initialised on {frame_ns}')
    if kind == 'set_target':
        box = (request.x, request.y, request.width, request.height)
    else:
        box = (reply.box_x, reply.box_y, reply.box_width, reply.box_height)
        # The proposal is the blob under the point or the nearest one within half the point
        # box size (at most 40 / 2 among the values fuzzed).
        dx = max(reply.box_x - request.x, 0.0, request.x - reply.box_x - reply.box_width)
        dy = max(reply.box_y - request.y, 0.0, request.y - reply.box_y - reply.box_height)
        if not math.hypot(dx, dy) <= 20.0 or not (0 <= request.x < shape[1]
                                                  and 0 <= request.y < shape[0]):
            log.problem(f'select_target_at_point box far from the point: {request} {reply}')
    try:
        check_box(box, shape)
    except TargetRequestError as error:
        log.problem(f'{kind} succeeded with an invalid box ({error}): {request} {reply}')


def target_client(node, camera, rng, stop, log, name):
    count = 0
    while not stop.is_set():
        count += 1
        draw = rng.random()
        stamp = random_stamp(rng, camera)
        if draw < 0.55:
            request = harness.SetTarget.Request(
                x=absurd_or_plausible(rng, -50, 340), y=absurd_or_plausible(rng, -50, 260),
                width=absurd_or_plausible(rng, 1, 200), height=absurd_or_plausible(rng, 1, 200),
                stamp=stamp, target_id=f'{name}{count}')
            reply = log.call(node, harness.SetTarget, 'set_target', request, str(request))
            check_target_reply(reply, request, camera, 'set_target', log)
        elif draw < 0.85:
            request = harness.SelectTargetAtPoint.Request(
                x=absurd_or_plausible(rng, -20, 340), y=absurd_or_plausible(rng, -20, 260),
                stamp=stamp, target_id=f'{name}{count}')
            reply = log.call(node, harness.SelectTargetAtPoint, 'select_target_at_point',
                             request, str(request))
            check_target_reply(reply, request, camera, 'select_target_at_point', log)
        elif draw < 0.92:
            log.call(node, harness.Trigger, 'clear_target', harness.Trigger.Request(), 'clear')
        else:
            target_id = str(rng.choice([f'{name}{max(1, count - 1)}', f'{name}{count + 50}', '',
                                        ' padded', 'tab\tid', 'x' * 65]))
            request = harness.ClearTarget.Request(target_id=target_id)
            reply = log.call(node, harness.ClearTarget, 'clear_target_id', request,
                             f'clear_target_id {target_id!r}')
            check_clear_reply(reply, target_id, log)
        stop.wait(float(rng.uniform(0.0, 0.05)))


def check_clear_reply(reply, target_id, log):
    """A success must be for a valid id (whether it was tracked the client cannot know: the
    other client clears too); a refusal must say why."""
    if reply is None:
        return
    if not reply.success and not reply.message:
        log.problem(f'clear_target_id {target_id!r} refused without a reason')
    if reply.success:
        try:
            check_target_id(target_id)
        except TargetRequestError as error:
            log.problem(f'clear_target_id succeeded for an invalid id ({error})')


# -- parameters and lifecycle ----------------------------------------------------------------
def random_parameter_set(rng):
    """(values, valid): one or more parameter values, and whether the whole set is valid."""
    lost = float(rng.choice([0.1, 0.2, 0.3, -0.5, math.nan, 2.0]))
    recover = float(rng.choice([0.35, 0.4, 0.25, 5.0, math.inf]))
    thresholds_valid = math.isfinite(lost) and math.isfinite(recover) and 0 <= lost <= recover <= 1
    options = [
        ({'lost_threshold': lost, 'recover_threshold': recover}, thresholds_valid),
        ({'history_size': int(rng.choice([20, 45, 0, -3, 5000]))}, None),
        ({'catch_up_max_frames': int(rng.choice([5, 30, -1])),
          'catch_up_max_s': float(rng.choice([0.5, 2.0, 0.0, math.nan]))}, None),
        ({'size_change_frames': int(rng.choice([3, 10, 0]))}, None),
        ({'tracker': str(rng.choice(['no_such_tracker', 'siamrpn_r50_l234']))}, False),
        ({'weights': '/no/such/file.pth'}, False),
        ({'device': 'cuda:7'}, False),
        ({'input_transport': 'compressed'}, False),  # read-only
        ({'history_size': 'forty'}, False),  # wrong type
        ({'point_box_size': float(rng.choice([1.0, 40.0]))}, None),
        ({'max_targets': int(rng.choice([2, 8, 0, 65]))}, None),
    ]
    values, valid = options[int(rng.integers(len(options)))]
    if valid is None:
        valid = all(_plain_value_valid(name, value) for name, value in values.items())
    return values, valid


def _plain_value_valid(name, value):
    limits = {'history_size': (1, 1000), 'catch_up_max_frames': (0, 1000),
              'size_change_frames': (1, 10000), 'point_box_size': (2, math.inf),
              'max_targets': (1, 64)}
    if name == 'catch_up_max_s':
        return math.isfinite(value) and 0 < value <= 60
    low, high = limits[name]
    return low <= value <= high


def parameter_message(name, value):
    kinds = {bool: (ParameterType.PARAMETER_BOOL, 'bool_value'),
             int: (ParameterType.PARAMETER_INTEGER, 'integer_value'),
             float: (ParameterType.PARAMETER_DOUBLE, 'double_value'),
             str: (ParameterType.PARAMETER_STRING, 'string_value')}
    kind, field = kinds[type(value)]
    return Parameter(name=name, value=ParameterValue(type=kind, **{field: value}))


def same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a)
                      and math.isnan(b))


class ControlClient:
    """Random parameter sets and lifecycle transitions, checking every reply against the
    state the node reports afterwards."""

    def __init__(self, node, rng, log):
        self.node, self.rng, self.log = node, rng, log
        self.state = 'active'

    def run(self, stop):
        while not stop.is_set():
            if self.rng.random() < 0.6:
                self.parameters()
            else:
                self.transition()
            stop.wait(float(self.rng.uniform(0.1, 0.3)))

    def parameters(self):
        values, valid = random_parameter_set(self.rng)
        names = list(values)
        before = self.node.get_parameters(*names)
        request = SetParameters.Request(
            parameters=[parameter_message(n, v) for n, v in values.items()])
        reply = self.log.call(self.node, SetParameters, 'tracker_node/set_parameters', request,
                              f'set_parameters {values}')
        if reply is None:
            return
        outcomes = {result.successful for result in reply.results}
        after = self.node.get_parameters(*names)
        if len(outcomes) != 1:
            self.log.problem(f'half-applied parameter set {values}: {reply.results}')
        elif outcomes == {True}:
            if not valid:
                self.log.problem(f'invalid parameter set accepted: {values}')
            if not all(same(a, values[n]) for a, n in zip(after, names)):
                self.log.problem(f'accepted {values} but the node reports {after}')
        elif not all(same(a, b) for a, b in zip(after, before)):
            self.log.problem(f'refused {values} but the node changed to {after}')

    def transition(self):
        transition_id = int(self.rng.choice([1, 2, 3, 4, 3, 4, 10, 99, 255]))
        by_label = transition_id in TRANSITIONS and self.rng.random() < 0.5
        request = ChangeState.Request()
        if by_label:
            request.transition.label = TRANSITIONS[transition_id][0]
        else:
            request.transition.id = transition_id
        label, start, goal = TRANSITIONS.get(transition_id, (str(transition_id), None, None))
        limit_s = CONFIGURE_ANSWER_S if transition_id == 1 else ANSWER_S
        reply = self.log.call(self.node, ChangeState, 'tracker_node/change_state', request,
                              f'transition {label} from {self.state}', limit_s)
        if reply is None:
            return
        expected = start == self.state
        if reply.success != expected:
            self.log.problem(f'transition {label} from {self.state}: success={reply.success}')
        if reply.success:
            self.state = goal
        state_reply = self.log.call(self.node, GetState, 'tracker_node/get_state',
                                    GetState.Request(), f'get_state after {label}')
        if state_reply is None:
            return
        reported = state_reply.current_state.label
        if reported != self.state:
            self.log.problem(f'after {label} the node reports {reported}, replies said '
                             f'{self.state}')
            self.state = reported

    def activate(self):
        """Back to active from wherever the fuzz left the node."""
        for label in {'unconfigured': ('configure', 'activate'), 'inactive': ('activate',),
                      'active': ()}[self.state]:
            assert self.node.change_state(label), label
        self.state = 'active'


# -- the checks ------------------------------------------------------------------------------
def target_ids(status):
    return [target.target_id for target in status.targets]


def reply_agrees_with_published_state(node, camera, rng, log, active):
    """One sequential set_target (valid or absurd box) beside the targets the round left: the
    status of a later frame must show the target the reply announced next to those, or just
    those after a refusal."""
    x, y, w, h = node_scene_box(camera)
    absurd = rng.random() < 0.5
    box = (x, y, 1e9, 1e9) if absurd else (x, y, w, h)
    if active:  # room for the probe below max_targets, whatever the round set it to
        held = target_ids(node.latest_status(timeout=10))
        (limit,) = node.get_parameters('max_targets')
        for target_id in held[:max(0, len(held) - limit + 1)]:
            reply = node.clear_target_id(target_id)
            if not reply.success:
                log.problem(f'clear_target_id {target_id!r} of a target the status showed: '
                            f'{reply.message}')
    previous = node.latest_status(timeout=10) if active else None  # inactive: no status
    probe_id = f'probe{camera.index}'
    reply = node.set_target(box, target_id=probe_id)
    if reply.success != (active and not absurd):
        log.problem(f'probe set_target (active={active}, absurd={absurd}): {reply.message}')
    if not active:
        return
    after_ns = stamp_to_ns(reply.frame_stamp) if reply.success else stamp_to_ns(
        previous.header.stamp)
    # A frame's status, not a heartbeat: a heartbeat is stamped with the node's clock, which is
    # past every camera stamp, so one published before the reply would pass a stamp test alone.
    status = node.status.wait_for(lambda m: stamp_to_ns(m.header.stamp) > after_ns
                                  and stamp_to_ns(m.header.stamp) in camera.shapes
                                  and m.header.frame_id == 'camera', 10)
    expected = target_ids(previous) + ([probe_id] if reply.success else [])
    if status is None or target_ids(status) != expected:
        log.problem(f'reply {reply.success} ({reply.message}) but the status shows '
                    f"{target_ids(status) if status else 'nothing'!r}, expected {expected!r}")


def node_scene_box(camera):
    return camera.scene.box(camera.index)


def sequence_frames():
    """The first frames of a real aerial sequence and their 1-based ground truth; without
    ../shared/uav_dev (a user's machine), a synthetic aerial sequence from eval/synth.py."""
    if (UAV_DEV / 'data_seq' / SEQUENCE).is_dir():
        sequence = load_uav123(UAV_DEV, [SEQUENCE]).sequences[0].head(SEQUENCE_FRAMES)
        return list(sequence.frames()), sequence.ground_truth
    synthetic = generate_sequence(SEED, 0, SynthConfig(frames=SEQUENCE_FRAMES,
                                                       out_of_view_probability=0.0))
    return synthetic.frames, synthetic.ground_truth


def to_xywh(detection):
    box = detection.bbox
    return np.array([box.center.position.x - box.size_x / 2,
                     box.center.position.y - box.size_y / 2, box.size_x, box.size_y])


def track_real_sequence_box_for_box(node):
    """Lockstep: each frame of the sequence goes out once its predecessor's detection came
    back; the node's boxes must be the in-process tracker's (same tracker, fp32, CPU)."""
    frames, ground_truth = sequence_frames()
    init_box = one_based_to_zero_based(ground_truth[0])
    reference = build_tracker('siamfc_alexnet', device='cpu', precision='fp32',
                              **PROFILE_THRESHOLDS)
    reference.init(frames[0], init_box)
    base = 900_000
    node.clear_target()
    node.deliver(harness.image_message(frames[0], stamp_of(base)), node.detections)
    reply = node.set_target(init_box, stamp=stamp_of(base), target_id='real')
    assert reply.success, reply.message
    ious = []
    for offset, frame in enumerate(frames[1:], start=1):
        node.publish(harness.image_message(frame, stamp_of(base + offset)))
        detections = node.detection_for(base + offset, timeout=30)
        status = node.status_for(base + offset)
        result = reference.track(frame)
        assert status.state == STATE_OF_TRACK[result.state], (offset, status.state, result.state)
        if detections.detections:
            ious.append(float(iou(to_xywh(detections.detections[0]), np.asarray(result.box))))
    assert ious and min(ious) > 0.99, ious
    return len(frames), min(ious)


def test_fuzzed_node_keeps_answering_agrees_with_itself_and_still_tracks(start_tracker, scene):
    node = start_tracker(precision='fp32', max_pixels=MAX_PIXELS)
    rng = np.random.default_rng(SEED)
    for service_type, name in ((harness.SetTarget, 'set_target'),
                               (harness.SelectTargetAtPoint, 'select_target_at_point'),
                               (harness.Trigger, 'clear_target'),
                               (SetParameters, 'tracker_node/set_parameters'),
                               (ChangeState, 'tracker_node/change_state')):
        assert node.service(service_type, name).wait_for_service(timeout_sec=10)
    log = Log()
    fuzz_start = time.monotonic()
    camera = FuzzCamera(node, scene, np.random.default_rng(SEED + 1))
    control = ControlClient(node, np.random.default_rng(SEED + 2), log)
    try:
        for round_index in range(ROUNDS):
            stop = threading.Event()
            camera.hostile.set()
            threads = [threading.Thread(target=target_client, args=(
                node, camera, np.random.default_rng(SEED + 10 * round_index + k), stop, log,
                f'r{round_index}c{k}_')) for k in range(2)]
            threads.append(threading.Thread(target=control.run, args=(stop,)))
            for thread in threads:
                thread.start()
            time.sleep(ROUND_S)
            stop.set()
            for thread in threads:
                thread.join(60)
            camera.hostile.clear()
            time.sleep(0.3)  # the newest frame is a well-formed scene frame again
            assert node.process.alive(), f'the node exited:\n{node.process.log()[-3000:]}'
            reply_agrees_with_published_state(node, camera, rng, log,
                                              control.state == 'active')
        control.activate()
    finally:
        camera.stop()
    assert node.process.alive(), node.process.log()[-3000:]
    assert not log.problems, '\n'.join(log.problems[:20])
    fuzz_s = time.monotonic() - fuzz_start
    results = node.set_parameters(**PROFILE_THRESHOLDS)
    assert all(r.successful for r in results)
    sequence_start = time.monotonic()
    frames, worst = track_real_sequence_box_for_box(node)
    sequence_s = time.monotonic() - sequence_start
    status = node.latest_status()
    assert node.process.alive()
    print(f'{log.calls} requests, slowest answer {log.slowest * 1000:.0f} ms; counters: '
          f'decode_errors {status.decode_errors}, too_large {status.dropped_too_large}, '
          f'size_mismatch {status.dropped_size_mismatch}, requests_refused '
          f'{status.requests_refused}, transitions_refused {status.transitions_refused}, '
          f'parameter_changes_refused {status.parameter_changes_refused}; real sequence '
          f'{frames} frames, worst IoU to the in-process tracker {worst:.4f}; fuzz {fuzz_s:.1f} s, '
          f'sequence {sequence_s:.1f} s')
