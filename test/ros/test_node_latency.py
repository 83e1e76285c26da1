"""The node never falls behind the camera: 100 Hz frames, a tracker slower than that, 15 s."""

import time

import numpy as np
import pytest

harness = pytest.importorskip('ros_harness', reason='rclpy or the built ROS interfaces are '
                                                    'missing: run `make setup`')

from builtin_interfaces.msg import Time  # noqa: E402

from siam_tracking_ros.ros.frames import stamp_to_ns  # noqa: E402

DURATION_S = 10.0
RATE_HZ = 100.0
WINDOW_S = 4.0


@pytest.mark.dds
@pytest.mark.slow  # 10 s of streaming is what the check is about
def test_latency_does_not_grow_with_a_tracker_slower_than_the_camera(start_tracker, scene):
    node = start_tracker()
    node.stream(scene, range(0, 3))
    assert node.set_target(scene.box(2)).success
    node.detections.clear()
    node.status.clear()
    start = time.monotonic()
    count = 0
    while time.monotonic() - start < DURATION_S:
        now_ns = time.time_ns()
        stamp = Time(sec=now_ns // 1_000_000_000, nanosec=now_ns % 1_000_000_000)
        node.publish(harness.image_message(scene.frame(3 + count), stamp))
        count += 1
        delay = start + count / RATE_HZ - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    received = [(arrival, (arrival - stamp_to_ns(m.header.stamp)) / 1e6)
                for arrival, m in list(node.detections.items)]
    first_arrival = received[0][0]
    first = [lat for t, lat in received if t - first_arrival < WINDOW_S * 1e9]
    last = [lat for t, lat in received if t - first_arrival > (DURATION_S - WINDOW_S) * 1e9]
    assert len(received) < 0.9 * count, 'the tracker was not slower than the camera'
    assert first and last, f'detections in the first/last {WINDOW_S} s: {len(first)}/{len(last)}'
    first_median, last_median = float(np.median(first)), float(np.median(last))
    # A queue would add about 10 s x (1 - processing rate / 100 Hz) of delay by the end, over
    # six seconds; the margin only absorbs the noise of a loaded 2-core machine.
    assert last_median < 2.0 * first_median + 500.0, (first_median, last_median)
    skipped = node.status.messages()[-1].frames_skipped
    assert skipped > 0, "frames arriving while one was tracked must be counted as skipped"
    print(f'frames {count}, detections {len(received)}, median latency first {first_median:.1f} '
          f'ms, last {last_median:.1f} ms, skipped {skipped}')
