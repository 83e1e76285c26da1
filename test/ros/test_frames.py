"""Frame history (count and byte budget), newest-frame slot, stamp gaps, throttled reporting."""

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from siam_tracking_ros.ros.frames import (Frame, FrameHistory, LatestFrameSlot, StampGapCounter,
                                          format_stamp, stamp_to_ns)
from siam_tracking_ros.ros.reporting import Counters, ThrottledReporter


def frame(stamp_ns: int, received_ns: int | None = None, decode=None, data=b'') -> Frame:
    stamp = SimpleNamespace(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    message = SimpleNamespace(header=SimpleNamespace(stamp=stamp, frame_id='cam'), data=data)
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


def test_history_keeps_within_its_byte_budget_counting_decoded_copies():
    decoded = np.zeros((100, 100, 3), np.uint8)  # 30 000 bytes, a copy (owns its data)
    frames = [frame(s, data=bytes(1000), decode=lambda m: decoded.copy()) for s in range(1, 6)]
    history = FrameHistory(10, max_bytes=35_000)
    for item in frames:
        history.add(item)
    assert len(history) == 5 and history.nbytes() == 5000
    frames[4].image()
    assert frames[4].nbytes == 31_000
    history.add(frame(6, data=bytes(1000)))
    assert history.nbytes() == 35_000 and history.newest().stamp_ns == 6
    assert history.find(1) is None and history.find(5) is frames[4]
    frames[4].release_image()
    assert frames[4].nbytes == 1000


def test_a_view_of_the_message_costs_no_extra_bytes():
    data = bytearray(12)
    item = frame(1, data=data, decode=lambda m: np.frombuffer(m.data, np.uint8).reshape(2, 2, 3))
    item.image()
    assert item.nbytes == 12


def test_history_always_keeps_the_newest_frame():
    history = FrameHistory(5, max_bytes=1 << 20)
    history.add(frame(1, data=bytes(2 << 20)))
    assert len(history) == 1
    history.add(frame(2, data=bytes(2 << 20)))
    assert len(history) == 1 and history.newest().stamp_ns == 2


def test_stamp_gaps_count_frames_that_never_arrived():
    gaps = StampGapCounter()
    period = 33_333_333
    stamps = [i * period for i in range(40) if i not in (20, 21, 30)]
    missing = [gaps.observe(stamp) for stamp in stamps]
    assert sum(missing) == 3 and missing[stamps.index(22 * period)] == 2
    assert gaps.observe(5 * period) == 0, 'a stamp going back restarts the estimate'


def test_throttled_reporter_counts_everything_and_emits_once_per_interval_per_cause():
    emitted, now = [], [0.0]
    counters = Counters()
    reporter = ThrottledReporter(emitted.append, counters, throttle_s=5.0, clock=lambda: now[0])
    assert reporter.report('truncated_data', 'frame cut short')
    assert not reporter.report('truncated_data', 'frame cut short')
    assert reporter.report('unknown_encoding', 'bayer')
    assert reporter.report('request_refused', 'box too small')
    now[0] = 6.0
    assert reporter.report('truncated_data', 'cut again')
    values = counters.snapshot()
    assert values['decode_errors'] == 4 and values['requests_refused'] == 1
    assert len(emitted) == 4 and emitted[0].startswith('[truncated_data] frame cut short')
    assert '(1 more since the last report)' in emitted[3]


def test_target_command_stamp_argument():
    import argparse
    from siam_tracking_ros.tools.cmd_target import stamp_argument
    assert stamp_argument('12.5') == (12, 500_000_000)
    assert stamp_argument('7') == (7, 0)
    for bad in ('-1', '1.2.3', 'x', '1.1234567890'):
        with pytest.raises(argparse.ArgumentTypeError, match='SEC or SEC.NANOSEC'):
            stamp_argument(bad)
