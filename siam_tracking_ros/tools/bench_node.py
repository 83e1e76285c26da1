"""`siamtrack bench --node`: what the ROS node adds on top of the bare tracker.

1. Per-frame overhead in this process, at each frame size: converting the image message to BGR
   (bgr8: a view; rgb8: one colour conversion), building Detection2DArray + TrackerStatus and
   publishing them. Target: at most 2 ms per 720p frame. Shown beside it: rclpy's own cost of
   taking the message from the middleware (CDR deserialisation into Python), which every rclpy
   subscriber pays whatever it does with the image.
2. Image-to-detection latency over DDS between two processes (this one as the camera, a
   tracker_node process), p50 / p95: idle (transport + node overhead only) and tracking.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from siam_tracking_ros.ros.process import (start_tracker_node, stop_process,
                                           use_local_ros_environment)

TARGET_OVERHEAD_MS = 2.0
LATENCY_TRACKER = 'siamfc_alexnet'


def percentiles(samples_ms) -> dict:
    values = np.asarray(samples_ms, dtype=np.float64)
    return {'p50_ms': float(np.percentile(values, 50)), 'p95_ms': float(np.percentile(values, 95)),
            'mean_ms': float(values.mean())}


def bench_frame(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def overhead_per_frame(node, publishers, width: int, height: int, encoding: str,
                       frames: int) -> dict:
    """Milliseconds per frame of take + convert + build + publish, as the node does them."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from siam_tracking_ros.ros.engine import NodeState, Target, TargetUpdate
    from siam_tracking_ros.ros.frames import Frame
    from siam_tracking_ros.ros.image_codec import fill_raw_message, raw_image_to_bgr
    from siam_tracking_ros.ros.messages import detections_message, status_message

    image = bench_frame(width, height)
    message = fill_raw_message(Image(), image if encoding == 'bgr8' else image[:, :, ::-1])
    message.encoding = encoding
    serialized = serialize_message(message)
    box, target = np.array([10.0, 20.0, 60.0, 40.0]), Target('1', 'car')
    take, samples = [], []
    for index in range(frames):
        start = time.perf_counter()
        received = deserialize_message(serialized, Image)
        taken = time.perf_counter()
        take.append((taken - start) * 1e3)
        frame = Frame(received, raw_image_to_bgr, time.monotonic_ns())
        frame.image()
        update = TargetUpdate(frame, NodeState.TRACKING, 0.9, box, target)
        publishers[0].publish(detections_message(update))
        publishers[1].publish(status_message(update, 'bench', 'cpu', 30.0, 5.0, index))
        samples.append((time.perf_counter() - taken) * 1e3)
    return {**percentiles(samples), 'take_p50_ms': float(np.percentile(take, 50))}


def measure_overhead(sizes, frames: int) -> list[dict]:
    import rclpy
    from vision_msgs.msg import Detection2DArray

    from siam_tracking_ros.msg import TrackerStatus
    from siam_tracking_ros.ros.tracker_node import OUTPUT_QOS

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f'bench_overhead_{os.getpid()}', context=context)
    publishers = (node.create_publisher(Detection2DArray, 'bench/detections', OUTPUT_QOS),
                  node.create_publisher(TrackerStatus, 'bench/status', OUTPUT_QOS))
    rows = []
    try:
        for width, height in sizes:
            for encoding in ('bgr8', 'rgb8'):
                figures = overhead_per_frame(node, publishers, width, height, encoding, frames)
                rows.append({'size': f'{width}x{height}', 'encoding': encoding, **figures})
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    return rows


def measure_latency(client, width: int, height: int, frames: int, tracking: bool) -> dict:
    """Publish frames one at a time (each after the previous detection) and time them."""
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from std_srvs.srv import Trigger

    from siam_tracking_ros.ros.image_codec import fill_raw_message
    from siam_tracking_ros.srv import SetTarget

    image = bench_frame(width, height)
    samples = []
    for index in range(frames + 1):
        stamp_ns = time.time_ns()
        stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
        client.camera.publish(fill_raw_message(Image(header=Header(stamp=stamp)), image))
        answer = client.detections.wait(stamp_ns, 30.0)
        if answer is None:
            raise TimeoutError(f'no detections for a {width}x{height} frame within 30 s')
        if index == 0 and tracking:
            reply = client.call(SetTarget, 'set_target', SetTarget.Request(
                x=width / 3, y=height / 3, width=width / 8, height=height / 8))
            if not reply.success:
                raise RuntimeError(f'set_target refused: {reply.message}')
        elif index > 0:
            samples.append((answer[0] - stamp_ns) / 1e6)
    if tracking:
        client.call(Trigger, 'clear_target', Trigger.Request())
    return percentiles(samples)


def measure_dds_latency(sizes, frames: int, log_path) -> list[dict]:
    from siam_tracking_ros.ros.client import TrackerClient

    namespace = f'/bench_{os.getpid()}'
    rows = []
    with open(log_path, 'w') as log:
        process = start_tracker_node(namespace, 'uav', {'tracker': LATENCY_TRACKER,
                                                        'device': 'cpu'}, log)
        client = TrackerClient(namespace, 'bench_camera')
        try:
            client.wait_active(process)
            for width, height in sizes:
                for tracking in (False, True):
                    figures = measure_latency(client, width, height, frames, tracking)
                    rows.append({'size': f'{width}x{height}',
                                 'mode': f'tracking ({LATENCY_TRACKER}, cpu)' if tracking
                                 else 'idle', **figures})
        finally:
            client.close()
            stop_process(process)
    return rows


def print_figures(overhead: list[dict], latency: list[dict]) -> None:
    print('Node overhead per frame (convert + build + publish), this process:')
    for row in overhead:
        print(f"  {row['size']:>9} {row['encoding']:<5} mean {row['mean_ms']:6.3f} ms  "
              f"p50 {row['p50_ms']:6.3f}  p95 {row['p95_ms']:6.3f}   "
              f"(rclpy take p50 {row['take_p50_ms']:6.3f} ms)")
    for row in overhead:
        if row['size'] == '1280x720' and row['encoding'] == 'bgr8':
            verdict = 'meets' if row['p50_ms'] <= TARGET_OVERHEAD_MS else 'misses'
            print(f'  720p bgr8 {verdict} the {TARGET_OVERHEAD_MS:g} ms target')
    print('Image-to-detection latency over DDS (two processes):')
    for row in latency:
        print(f"  {row['size']:>9} {row['mode']:<26} p50 {row['p50_ms']:8.2f} ms  "
              f"p95 {row['p95_ms']:8.2f} ms")


def run_node_bench(args: argparse.Namespace) -> int:
    use_local_ros_environment()
    sizes = list(getattr(args, 'sizes', None) or [(640, 360), (1280, 720)])
    frames = int(getattr(args, 'frames', 50))
    threads = getattr(args, 'threads', None)
    if threads:
        import torch
        torch.set_num_threads(threads)
    overhead = measure_overhead(sizes, max(frames, 20))
    log_path = Path(tempfile.gettempdir()) / f'bench_node_{os.getpid()}.log'
    latency = measure_dds_latency(sizes, min(frames, 30), log_path)
    print_figures(overhead, latency)
    print(f'tracker_node log: {log_path}')
    if getattr(args, 'json', None):
        args.json.write_text(json.dumps({'overhead': overhead, 'latency': latency}, indent=2))
    return 0
