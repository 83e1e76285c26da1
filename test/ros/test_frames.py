"""Frame history, newest-frame slot and once-per-cause reporting."""

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from siam_tracking_ros.ros.frames import (Frame, FrameHistory, LatestFrameSlot, format_stamp,
                                          stamp_to_ns)
from siam_tracking_ros.ros.reporting import OncePerCause


def frame(stamp_ns: int, received_ns: int | None = None, decode=None) -> Frame:
    stamp = SimpleNamespace(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    message = SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id='cam'))
    return Frame(message, decode or (lambda m: np.zeros((2, 2, 3), np.uint8)),
                 received_ns if received_ns is not None else stamp_ns)


def test_stamp_conversions():
    assert stamp_to_ns(SimpleNamespace(sec=3, nanosec=25)) == 3_000_000_025
    assert format_stamp(3_000_000_025) == '3.000000025'


def test_frame_decodes_once():
    calls = []
    item = frame(1, decode=lambda m: calls.append(m) or np.ones((1, 1, 3), np.uint8))
    assert item.image() is item.image()
    assert len(calls) == 1


def test_history_keeps_the_newest_frames_and_finds_by_stamp():
    history = FrameHistory(3)
    frames = [frame(s * 10**9) for s in range(1, 6)]
    for item in frames:
        history.add(item)
    assert history.find(1 * 10**9) is None
    assert history.find(4 * 10**9) is frames[3]
    assert history.newest() is frames[4]
    assert history.received_after(frames[2]) == frames[3:]
    assert history.received_after(frames[0]) == []
    assert history.describe_range() == '3 frames from 3.000000000 to 5.000000000'
    history.resize(1)
    assert history.describe_range() == '1 frames from 5.000000000 to 5.000000000'
    history.clear()
    assert history.describe_range() == 'no frames received yet'


def test_history_size_must_be_positive():
    with pytest.raises(ValueError, match='at least 1, got 0'):
        FrameHistory(0)


def test_slot_keeps_only_the_newest_and_counts_skips():
    slot = LatestFrameSlot()
    first, second, third = frame(1), frame(2), frame(3)
    slot.put(first)
    slot.put(second)
    slot.put(third)
    assert slot.take(0.1) is third
    assert slot.skipped == 2
    assert slot.take(0.01) is None


def test_slot_close_wakes_a_waiting_taker():
    slot = LatestFrameSlot()
    taken = []
    worker = threading.Thread(target=lambda: taken.append(slot.take(5.0)))
    worker.start()
    slot.close()
    worker.join(2.0)
    assert not worker.is_alive() and taken == [None]


def test_once_per_cause_emits_the_first_occurrence_only():
    emitted = []
    once = OncePerCause(emitted.append)
    assert once.report('truncated_data', 'frame cut short')
    assert not once.report('truncated_data', 'frame cut short')
    assert once.report('unknown_encoding', 'bayer')
    assert once.count('truncated_data') == 2
    assert len(emitted) == 2 and emitted[0].startswith('[truncated_data] frame cut short')
    once.forget('truncated_data')
    assert once.report('truncated_data', 'again')


def test_target_command_stamp_argument():
    import argparse
    from siam_tracking_ros.tools.cmd_target import stamp_argument
    assert stamp_argument('12.5') == (12, 500_000_000)
    assert stamp_argument('7') == (7, 0)
    for bad in ('-1', '1.2.3', 'x', '1.1234567890'):
        with pytest.raises(argparse.ArgumentTypeError, match='SEC or SEC.NANOSEC'):
            stamp_argument(bad)
