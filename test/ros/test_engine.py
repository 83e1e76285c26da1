"""The node's tracking engine with a real tracker (siamfc_alexnet on CPU, tiny frames), its
targets in a MultiTargetTracker."""
import threading
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from siam_tracking_ros.core.multi_target import MultiTargetTracker
from siam_tracking_ros.core.registry import build_tracker
from siam_tracking_ros.ros.engine import (UNNAMED_KEY, EngineLimits, FifoLock, NodeState, Target,
                                          TrackingEngine)
from siam_tracking_ros.ros.frames import Frame, FrameHistory
from siam_tracking_ros.ros.image_codec import TruncatedImageError
from siam_tracking_ros.ros.requests import TargetRequestError

HEIGHT, WIDTH = 120, 160
# A loaded machine must not turn a test of the frame bound into one of the time bound.
UNBOUNDED_TIME = EngineLimits(catch_up_max_s=60.0)


class RecordingTracker:
    """Passes every call to a real MultiTargetTracker and records which frames it saw, in
    order (``calls``), and for which target ids (``targets``, a list per call)."""

    def __init__(self, prototype):
        self.inner = MultiTargetTracker(lambda: prototype)
        self.calls, self.targets = [], []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def add(self, key, image, box):
        self.calls.append(('init', int(image[0, 0, 0])))
        self.targets.append([key])
        return self.inner.add(key, image, box)

    def track(self, image, keys=None):
        self.calls.append(('track', int(image[0, 0, 0])))
        self.targets.append(list(keys))
        return self.inner.track(image, keys)


class Reports:
    """Collects what the engine reports, as the node's reporter would count it."""

    def __init__(self):
        self.items = []

    def __call__(self, cause, message, amount=1):
        self.items.append((cause, message, amount))

    def causes(self):
        return [cause for cause, _, _ in self.items]


@pytest.fixture(scope='module')
def real_tracker():
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # random weights where none ship
        return build_tracker('siamfc_alexnet', device='cpu')


def numbered_frame(index: int, shape=(HEIGHT, WIDTH), decode=None) -> Frame:
    """A frame whose top-left pixel holds its index, so recorded calls name the frame."""
    image = np.random.default_rng(index).integers(0, 255, (*shape, 3), dtype=np.uint8)
    image[0, 0, 0] = index
    stamp = SimpleNamespace(sec=100, nanosec=index)
    message = SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id='cam'), data=b'')
    return Frame(message, decode or (lambda _: image), received_ns=index)


def undecodable_frame(index: int) -> Frame:
    def fail(_message):
        raise TruncatedImageError('image data is truncated')
    return numbered_frame(index, decode=fail)


def run_worker(engine: TrackingEngine, newest=()):
    """What the node's worker does: catch-up frames first, then the newest frames."""
    updates = []
    pending = list(newest)
    while True:
        item = engine.next_catch_up()
        if item is None and not pending:
            return updates
        frame, generation = item if item is not None else (pending.pop(0), None)
        update = engine.process(frame, generation)
        if update is not None:
            updates.append(update)


def test_start_on_an_older_frame_catches_up_in_order_in_the_worker(real_tracker):
    recorder = RecordingTracker(real_tracker)
    engine = TrackingEngine(recorder, 'siamfc_alexnet', UNBOUNDED_TIME)
    history = FrameHistory(10)
    frames = [numbered_frame(i) for i in range(1, 8)]
    for frame in frames:
        history.add(frame)
    update = engine.start(frames[2], (60, 40, 30, 30), Target('a', 'car'),
                          history.received_after(frames[2]))
    assert recorder.calls == [('init', 3)], 'start only initialises: the worker catches up'
    assert update.frame is frames[2] and engine.catch_up_pending == 4
    # A newest frame taken by the worker meanwhile waits for the catch-up to end.
    later = numbered_frame(8)
    assert engine.process(later) is None
    updates = run_worker(engine)
    assert recorder.calls[1:] == [('track', i) for i in (4, 5, 6, 7, 8)]
    assert [u.frame for u in updates] == frames[3:] + [later]
    assert all(u.target == Target('a', 'car') for u in updates)
    assert engine.process(frames[-1]) is None, 'a frame already caught up is not tracked twice'


def test_catch_up_is_bounded_by_frames_then_jumps_to_the_newest(real_tracker):
    reports = Reports()
    recorder = RecordingTracker(real_tracker)
    engine = TrackingEngine(recorder, 'x', EngineLimits(catch_up_max_frames=2,
                                                        catch_up_max_s=60.0), reports)
    frames = [numbered_frame(i) for i in range(1, 10)]
    engine.start(frames[0], (60, 40, 30, 30), Target('', ''), frames[1:])
    newest = numbered_frame(20)
    engine.process(newest)
    run_worker(engine)
    assert recorder.calls == [('init', 1), ('track', 2), ('track', 3), ('track', 20)]
    (cause, message, amount), = reports.items
    assert cause == 'catch_up_bound' and amount == 6
    assert 'tracked 2 of 8 later frames' in message and '6 left untracked' in message


def test_catch_up_is_bounded_by_seconds(real_tracker):
    now = [0.0]
    reports = Reports()
    engine = TrackingEngine(RecordingTracker(real_tracker), 'x',
                            EngineLimits(catch_up_max_s=1.0), reports, clock=lambda: now[0])
    frames = [numbered_frame(i) for i in range(1, 6)]
    engine.start(frames[0], (60, 40, 30, 30), Target('', ''), frames[1:])
    frame, generation = engine.next_catch_up()
    engine.process(frame, generation)
    now[0] = 1.5
    assert engine.next_catch_up() is None and engine.catch_up_pending == 0
    assert reports.causes() == ['catch_up_bound'] and reports.items[0][2] == 3


def test_a_newer_request_supersedes_the_catch_up_of_an_older_one(real_tracker):
    recorder = RecordingTracker(real_tracker)
    engine = TrackingEngine(recorder, 'x', UNBOUNDED_TIME)
    frames = [numbered_frame(i) for i in range(1, 8)]
    engine.start(frames[0], (60, 40, 30, 30), Target('car', 'old'), frames[1:])
    stale = engine.next_catch_up()
    engine.start(frames[4], (50, 40, 30, 30), Target('car', 'new'), frames[5:])
    assert engine.process(*stale) is None, 'a frame of the older request is not published'
    updates = run_worker(engine)
    assert [u.frame for u in updates] == frames[5:]
    assert {u.target for u in updates} == {Target('car', 'new')}
    assert recorder.calls == [('init', 1), ('init', 5), ('track', 6), ('track', 7)]


def test_undecodable_or_resized_later_frames_are_dropped_and_the_target_stays(real_tracker):
    reports = Reports()
    engine = TrackingEngine(RecordingTracker(real_tracker), 'x', UNBOUNDED_TIME, reports)
    first = numbered_frame(1)
    later = [undecodable_frame(2), numbered_frame(3, shape=(60, 80)), numbered_frame(4)]
    update = engine.start(first, (60, 40, 30, 30), Target('t', ''), later)
    assert update.state == NodeState.TRACKING and engine.target == Target('t', '')
    updates = run_worker(engine)
    assert reports.causes() == ['truncated_data', 'size_mismatch']
    assert [u.frame for u in updates] == [later[2]] and engine.target == Target('t', '')


def test_one_frame_of_another_size_is_dropped_a_sustained_change_reinitialises(real_tracker):
    reports = Reports()
    recorder = RecordingTracker(real_tracker)
    engine = TrackingEngine(recorder, 'x', EngineLimits(size_change_frames=3), reports)
    engine.start(numbered_frame(1), (60, 40, 30, 30), Target('t', ''))
    for index, shape in ((2, (1, 1)), (3, (60, 80)), (4, (HEIGHT, WIDTH))):
        update = engine.process(numbered_frame(index, shape=shape))
        assert (update is None) == (shape != (HEIGHT, WIDTH))
    last_box = update.box
    assert engine.state == NodeState.TRACKING and reports.causes() == ['size_mismatch'] * 2
    updates = [engine.process(numbered_frame(i, shape=(60, 80))) for i in (5, 6, 7)]
    assert updates[:2] == [None, None]
    assert updates[2].state == NodeState.TRACKING
    np.testing.assert_allclose(updates[2].box, last_box / 2)
    assert recorder.calls[-1] == ('init', 7) and reports.causes()[-1] == 'size_change'
    assert engine.process(numbered_frame(8, shape=(60, 80))).state != NodeState.IDLE


def test_idle_engine_reports_idle_and_clear_drops_the_target(real_tracker):
    engine = TrackingEngine(RecordingTracker(real_tracker), 'siamfc_alexnet')
    assert engine.process(numbered_frame(1)).state == NodeState.IDLE
    engine.start(numbered_frame(2), (10, 10, 20, 20), Target('', ''))
    assert engine.state == NodeState.TRACKING
    engine.clear()
    update = engine.process(numbered_frame(3))
    assert update.state == NodeState.IDLE and update.box is None and engine.target is None


def test_an_idle_frame_decoding_while_a_target_is_set_is_not_published_as_idle(real_tracker):
    engine = TrackingEngine(RecordingTracker(real_tracker), 'siamfc_alexnet')
    image = numbered_frame(4).image()

    def decode_while_a_target_is_set(_message):
        engine.start(numbered_frame(5), (10, 10, 20, 20), Target('new', ''))
        return image
    update = engine.process(numbered_frame(6, decode=decode_while_a_target_is_set))
    assert update is None, 'an IDLE update would contradict the reply that set the target'
    assert engine.state == NodeState.TRACKING and engine.target.target_id == 'new'


@pytest.mark.parametrize('box,reason', [((np.nan, 0, 5, 5), 'finite'),
                                        ((0, 0, -5, 5), 'positive'),
                                        ((10, 10, 0.3, 0.3), 'minimum side'),
                                        ((0, 0, 1e9, 1e9), 'larger than the 160x120 image'),
                                        ((500, 500, 5, 5), 'does not overlap')])
def test_bad_boxes_leave_the_engine_as_it_was(real_tracker, box, reason):
    engine = TrackingEngine(RecordingTracker(real_tracker), 'siamfc_alexnet')
    with pytest.raises(TargetRequestError, match=reason):
        engine.start(numbered_frame(1), box, Target('', ''))
    assert engine.state == NodeState.IDLE
    engine.start(numbered_frame(2), (10, 10, 20, 20), Target('kept', ''))
    with pytest.raises(TargetRequestError, match=reason):
        engine.start(numbered_frame(3), box, Target('', ''))
    assert engine.target == Target('kept', '')


def test_a_tracker_failing_to_initialise_leaves_no_target(real_tracker):
    class Failing(RecordingTracker):
        def add(self, key, image, box):
            raise RuntimeError('out of memory')
    engine = TrackingEngine(Failing(real_tracker), 'x')
    with pytest.raises(TargetRequestError, match="failed to initialise.*target '' is not"):
        engine.start(numbered_frame(1), (10, 10, 20, 20), Target('', ''))
    assert engine.target is None and engine.state == NodeState.IDLE


def test_swap_restarts_the_targets_on_the_new_tracker(real_tracker):
    engine = TrackingEngine(RecordingTracker(real_tracker), 'siamfc_alexnet')
    engine.start(numbered_frame(1), (40, 40, 30, 30), Target('x', ''))
    engine.start(numbered_frame(1), (80, 40, 30, 30), Target('', ''))
    engine.set_thresholds(0.1, 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # random weights where none ship
        recorder = RecordingTracker(build_tracker('siamfc_alexnet', device='cpu'))
    newest = numbered_frame(2)
    engine.swap_tracker(recorder, 'other', newest, 'cpu')
    assert recorder.calls == [('init', 2)] * 2 and engine.tracker_name == 'other'
    assert recorder.targets == [['x'], [UNNAMED_KEY]]
    assert engine.state == NodeState.TRACKING and engine.target_ids == ['x', '']
    for key in ('x', UNNAMED_KEY):  # thresholds set earlier hold on the new tracker too
        config = recorder.tracker(key).config
        assert (config.lost_threshold, config.recover_threshold) == (0.1, 0.3)
    engine.set_thresholds(0.2, 0.5)
    config = recorder.tracker('x').config
    assert (config.lost_threshold, config.recover_threshold) == (0.2, 0.5)


def test_fifo_lock_serves_waiters_in_arrival_order():
    lock, order = FifoLock(), []
    started = []

    def waiter(name):
        started.append(name)
        with lock:
            order.append(name)

    with lock:
        threads = []
        for name in 'abc':
            thread = threading.Thread(target=waiter, args=(name,))
            thread.start()
            threads.append(thread)
            while len(started) < len(threads):
                pass
            # Let the waiter take its ticket before the next one starts.
            threading.Event().wait(0.05)
    for thread in threads:
        thread.join(2.0)
    assert order == ['a', 'b', 'c']


# -- several targets --------------------------------------------------------------------------
def ids_and_states(update):
    return [(report.target.target_id, report.state) for report in update.targets]


def test_targets_are_added_by_id_tracked_in_one_pass_and_cleared_one_by_one(real_tracker):
    recorder = RecordingTracker(real_tracker)
    engine = TrackingEngine(recorder, 'x', UNBOUNDED_TIME)
    for index, target_id in enumerate(('a', 'b', 'c')):
        engine.start(numbered_frame(1), (10 + 40 * index, 40, 30, 30), Target(target_id, 'car'))
    engine.start(numbered_frame(1), (15, 45, 30, 30), Target('a', 'truck'))  # replaces 'a'
    assert engine.target_ids == ['a', 'b', 'c'] and engine.target is None
    update = engine.process(numbered_frame(2))
    assert recorder.targets[-1] == ['a', 'b', 'c'], 'one pass over every target'
    assert [r.target for r in update.targets] == [Target('a', 'truck'), Target('b', 'car'),
                                                  Target('c', 'car')]
    assert all(r.box is not None for r in update.targets) and update.state != NodeState.IDLE
    engine.remove('b')
    with pytest.raises(TargetRequestError, match=r"no target with id 'z' is tracked "
                                                 r"\(tracked: 'a', 'c'\)"):
        engine.remove('z')
    update = engine.process(numbered_frame(3))
    assert [r.target.target_id for r in update.targets] == ['a', 'c']
    assert recorder.targets[-1] == ['a', 'c'] and recorder.inner.target_ids == ['a', 'c']
    assert engine.clear() == ['a', 'c'] and engine.process(numbered_frame(4)).targets == ()


def test_a_target_beyond_max_targets_or_with_a_bad_id_is_refused_and_the_others_stay(
        real_tracker):
    engine = TrackingEngine(RecordingTracker(real_tracker), 'x', EngineLimits(max_targets=2))
    engine.start(numbered_frame(1), (10, 40, 30, 30), Target('a', ''))
    engine.start(numbered_frame(1), (60, 40, 30, 30), Target('b', ''))
    with pytest.raises(TargetRequestError, match=r"max_targets \(2\) targets are tracked "
                                                 r"already \('a', 'b'\)"):
        engine.start(numbered_frame(2), (100, 40, 30, 30), Target('c', ''))
    for bad_id, reason in (('a\tb', 'printable'), (' a', 'white space'), ('x' * 65, '64')):
        with pytest.raises(TargetRequestError, match=reason):
            engine.start(numbered_frame(2), (100, 40, 30, 30), Target(bad_id, ''))
    engine.start(numbered_frame(2), (20, 40, 30, 30), Target('a', 'again'))  # a replacement
    with pytest.raises(TargetRequestError, match='is 80x60 but the other targets'):
        engine.start(numbered_frame(3, shape=(60, 80)), (10, 10, 20, 20), Target('b', ''))
    assert engine.target_ids == ['a', 'b']
    assert ids_and_states(engine.process(numbered_frame(4))) == [
        ('a', NodeState.TRACKING), ('b', NodeState.TRACKING)]


def test_a_target_catching_up_does_not_stall_the_live_ones(real_tracker):
    """While 'new' tracks the history frames it missed (alone, unpublished: the live target is
    past them), the live frames track 'live' and report 'new' CATCHING_UP, without a box."""
    recorder = RecordingTracker(real_tracker)
    engine = TrackingEngine(recorder, 'x', UNBOUNDED_TIME)
    frames = [numbered_frame(i) for i in range(1, 6)]
    engine.start(frames[0], (10, 40, 30, 30), Target('live', ''))
    for frame in frames[1:]:
        engine.process(frame)
    engine.start(frames[1], (60, 40, 30, 30), Target('new', ''), frames[2:])
    assert engine.has_live_targets() and engine.catch_up_pending == 3
    step = engine.next_catch_up()
    assert step[0] is frames[2] and engine.process(*step) is None
    assert recorder.targets[-1] == ['new']
    live = engine.process(numbered_frame(6))
    assert recorder.targets[-1] == ['live']
    assert ids_and_states(live)[1] == ('new', NodeState.CATCHING_UP)
    assert live.targets[1].box is None and live.targets[1].catch_up_pending == 2
    assert live.targets[0].box is not None
    for _ in range(2):
        engine.process(*engine.next_catch_up())
    assert engine.next_catch_up() is None and engine.catch_up_pending == 0
    joined = engine.process(numbered_frame(7))
    assert recorder.targets[-1] == ['live', 'new']
    assert all(r.state != NodeState.CATCHING_UP and r.box is not None for r in joined.targets)


def test_targets_set_on_one_older_frame_catch_up_together_and_are_published(real_tracker):
    recorder = RecordingTracker(real_tracker)
    engine = TrackingEngine(recorder, 'x', UNBOUNDED_TIME)
    frames = [numbered_frame(i) for i in range(1, 5)]
    for index, target_id in enumerate(('a', 'b', 'c')):
        engine.start(frames[0], (10 + 40 * index, 40, 30, 30), Target(target_id, ''),
                     frames[1:])
    assert not engine.has_live_targets()
    updates = run_worker(engine)
    assert [u.frame for u in updates] == frames[1:]
    assert recorder.targets[3:] == [['a', 'b', 'c']] * 3, 'each history frame once, batched'
    assert all(len(u.targets) == 3 and all(r.box is not None for r in u.targets)
               for u in updates)


def test_an_update_is_not_published_once_a_target_it_reports_was_cleared(real_tracker):
    engine = TrackingEngine(RecordingTracker(real_tracker), 'x')
    engine.start(numbered_frame(1), (10, 40, 30, 30), Target('a', ''))
    engine.start(numbered_frame(1), (60, 40, 30, 30), Target('b', ''))
    published = []
    update = engine.process(numbered_frame(2))
    engine.remove('a')
    assert not engine.publish_if_current(update, published.append)
    update = engine.process(numbered_frame(3))
    assert engine.publish_if_current(update, published.append) and published == [update]
    engine.start(numbered_frame(3), (10, 40, 30, 30), Target('a', ''))
    assert not engine.publish_if_current(update, published.append), 'a target set since'


def test_the_unnamed_target_and_named_ones_are_kept_apart(real_tracker):
    recorder = RecordingTracker(real_tracker)
    engine = TrackingEngine(recorder, 'x')
    engine.start(numbered_frame(1), (10, 40, 30, 30), Target('', 'first'))
    engine.start(numbered_frame(1), (60, 40, 30, 30), Target('b', ''))
    assert recorder.inner.target_ids == [UNNAMED_KEY, 'b']
    update = engine.process(numbered_frame(2))
    assert [r.target.target_id for r in update.targets] == ['', 'b']
    engine.remove('')
    assert engine.target == Target('b', '')
    engine.process(numbered_frame(3))
    assert recorder.inner.target_ids == ['b']


def test_a_tracker_failing_on_a_frame_clears_the_targets_of_that_pass(real_tracker):
    reports = Reports()

    class FailingTrack(RecordingTracker):
        def track(self, image, keys=None):
            raise RuntimeError('device lost')
    engine = TrackingEngine(FailingTrack(real_tracker), 'x', report=reports)
    engine.start(numbered_frame(1), (10, 40, 30, 30), Target('a', ''))
    engine.start(numbered_frame(1), (60, 40, 30, 30), Target('b', ''))
    update = engine.process(numbered_frame(2))
    assert update.targets == () and update.state == NodeState.IDLE
    assert reports.causes() == ['tracker_error'] and "targets 'a', 'b' cleared" in \
        reports.items[0][1]


def test_a_suspended_engine_drops_the_pass_in_progress_and_refuses_the_waiting_start(
        real_tracker):
    """Deactivating does not wait for the tracker: the pass running meanwhile publishes
    nothing, a start that waited for the tracker is refused, and resuming starts empty."""
    class SuspendedDuringTheCall(RecordingTracker):
        """Suspends the engine during the tracker call for frame 2 and for target 'late'."""

        def track(self, image, keys=None):
            if image[0, 0, 0] == 2:
                engine.suspend()
            return super().track(image, keys)

        def add(self, key, image, box):
            if key == 'late':
                engine.suspend()
            return super().add(key, image, box)
    engine = TrackingEngine(SuspendedDuringTheCall(real_tracker), 'x')
    engine.start(numbered_frame(1), (10, 40, 30, 30), Target('a', ''))
    published = []
    update = engine.process(numbered_frame(2))
    assert update is None and engine.target_ids == []
    assert engine.process(numbered_frame(3)) is None, 'no IDLE update while suspended'
    engine.resume()
    with pytest.raises(TargetRequestError, match="deactivated while target 'late' waited"):
        engine.start(numbered_frame(4), (10, 40, 30, 30), Target('late', ''))
    assert engine.target_ids == []
    with pytest.raises(TargetRequestError, match='deactivated'):
        engine.start(numbered_frame(5), (10, 40, 30, 30), Target('b', ''))
    engine.resume()
    engine.start(numbered_frame(6), (10, 40, 30, 30), Target('b', ''))
    update = engine.process(numbered_frame(7))
    assert engine.publish_if_current(update, published.append) and published == [update]
    assert update.targets[0].target.target_id == 'b'
    engine.suspend()
    assert not engine.publish_if_current(update, published.append), 'made before suspending'
    assert engine.state == NodeState.IDLE
