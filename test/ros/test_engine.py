"""The node's tracking engine with a real tracker (siamfc_alexnet on CPU, tiny frames)."""
import warnings

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from siam_tracking_ros.core.registry import build_tracker
from siam_tracking_ros.ros.engine import NodeState, Target, TrackingEngine
from siam_tracking_ros.ros.frames import Frame, FrameHistory

HEIGHT, WIDTH = 120, 160


class RecordingTracker:
    """Passes every call to a real tracker and records which frames it saw, in order."""

    def __init__(self, tracker):
        self.tracker, self.calls = tracker, []

    def __getattr__(self, name):
        return getattr(self.tracker, name)

    def init(self, image, box):
        self.calls.append(('init', int(image[0, 0, 0])))
        return self.tracker.init(image, box)

    def track(self, image):
        self.calls.append(('track', int(image[0, 0, 0])))
        return self.tracker.track(image)


@pytest.fixture(scope='module')
def real_tracker():
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # random weights where none ship
        return build_tracker('siamfc_alexnet', device='cpu')


def numbered_frame(index: int) -> Frame:
    """A frame whose top-left pixel holds its index, so recorded calls name the frame."""
    image = np.random.default_rng(index).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[0, 0, 0] = index
    stamp = SimpleNamespace(sec=100, nanosec=index)
    message = SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id='cam'))
    return Frame(message, lambda _: image, received_ns=index)


def test_start_on_an_older_frame_catches_up_in_order(real_tracker):
    recorder = RecordingTracker(real_tracker)
    engine = TrackingEngine(recorder, 'siamfc_alexnet')
    history = FrameHistory(10)
    frames = [numbered_frame(i) for i in range(1, 8)]
    for frame in frames:
        history.add(frame)
    update = engine.start(frames[2], (60, 40, 30, 30), Target('a', 'car'), history)
    assert recorder.calls == [('init', 3), ('track', 4), ('track', 5), ('track', 6), ('track', 7)]
    assert update.frame is frames[-1] and update.target == Target('a', 'car')
    assert engine.step(frames[-1]) is None, 'a frame already caught up is not tracked twice'
    later = numbered_frame(8)
    assert engine.step(later).frame is later and recorder.calls[-1] == ('track', 8)


def test_idle_engine_reports_idle_and_clear_drops_the_target(real_tracker):
    engine = TrackingEngine(real_tracker, 'siamfc_alexnet')
    assert engine.step(numbered_frame(1)).state == NodeState.IDLE
    history = FrameHistory(2)
    history.add(numbered_frame(2))
    engine.start(history.newest(), (10, 10, 20, 20), Target('', ''), history)
    assert engine.state == NodeState.TRACKING
    engine.clear()
    update = engine.step(numbered_frame(3))
    assert update.state == NodeState.IDLE and update.box is None and engine.target is None


@pytest.mark.parametrize('box,reason', [((np.nan, 0, 5, 5), 'finite'),
                                        ((0, 0, -5, 5), 'positive'),
                                        ((500, 500, 5, 5), 'does not overlap')])
def test_bad_boxes_leave_the_engine_idle(real_tracker, box, reason):
    engine = TrackingEngine(real_tracker, 'siamfc_alexnet')
    history = FrameHistory(2)
    history.add(numbered_frame(1))
    with pytest.raises(ValueError, match=reason):
        engine.start(history.newest(), box, Target('', ''), history)
    assert engine.state == NodeState.IDLE


def test_swap_restarts_the_target_on_the_new_tracker(real_tracker):
    engine = TrackingEngine(real_tracker, 'siamfc_alexnet')
    history = FrameHistory(3)
    history.add(numbered_frame(1))
    engine.start(history.newest(), (40, 40, 30, 30), Target('x', ''), history)
    recorder = RecordingTracker(build_tracker('siamfc_alexnet', device='cpu'))
    newest = numbered_frame(2)
    engine.swap_tracker(recorder, 'other', newest)
    assert recorder.calls == [('init', 2)] and engine.tracker_name == 'other'
    assert engine.state == NodeState.TRACKING
    engine.set_thresholds(0.1, 0.3)
    assert (recorder.config.lost_threshold, recorder.config.recover_threshold) == (0.1, 0.3)
