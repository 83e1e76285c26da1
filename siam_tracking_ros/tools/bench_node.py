"""`siamtrack bench --node`: what the ROS node adds on top of the bare tracker.

1. Per-frame overhead in this process, at each frame size: converting the image message to BGR
   (bgr8: a view; rgb8: one colour conversion), building Detection2DArray + TrackerStatus and
   publishing them. Target: at most 2 ms per 720p frame. Shown beside it: rclpy's own cost of
   taking the message from the middleware (CDR deserialisation into Python), which every rclpy
   subscriber pays whatever it does with the image.
2. Image-to-detection latency over DDS between two processes (this one as the camera, a
   tracker_node process), p50 / p95: idle (transport + node overhead only) and tracking.
3. The node next to the bare tracker, per tracker and frame size, on the same synthetic clip in
   the same precision (both with ``lost_threshold`` 0, so neither widens its search): the bare
   ``track()`` fps and p95, and through the node (frames published one at a time, each once the
   previous detection is back) fps and p95 image-to-detection latency. Targets: node fps at least
   0.9x the bare fps; node p95 at most the tracker's p95 + 15 ms.
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
TARGET_NODE_FPS_RATIO = 0.9
TARGET_EXTRA_P95_MS = 15.0


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
        update = TargetUpdate.single(frame, NodeState.TRACKING, 0.9, box, target)
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


def publish_and_wait(client, image: np.ndarray, timeout_s: float = 30.0) -> tuple[int, int]:
    """Publish ``image`` stamped now; (stamp_ns, detection arrival_ns) once its detection is back."""
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from siam_tracking_ros.ros.image_codec import fill_raw_message

    stamp_ns = time.time_ns()
    stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    client.camera.publish(fill_raw_message(Image(header=Header(stamp=stamp)), image))
    answer = client.detections.wait(stamp_ns, timeout_s)
    if answer is None:
        raise TimeoutError(f'no detections for a {image.shape[1]}x{image.shape[0]} frame '
                           f'within {timeout_s} s')
    return stamp_ns, answer[0]


def node_tracking(client, clip: list[np.ndarray], first_box, warmup: int) -> dict:
    """Track ``clip`` through the node in lock step: fps and image-to-detection latency."""
    from siam_tracking_ros.srv import SetTarget
    from std_srvs.srv import Trigger

    publish_and_wait(client, clip[0])
    x, y, width, height = (float(v) for v in first_box)
    reply = client.call(SetTarget, 'set_target',
                        SetTarget.Request(x=x, y=y, width=width, height=height))
    if not reply.success:
        raise RuntimeError(f'set_target refused: {reply.message}')
    for image in clip[1:1 + warmup]:
        publish_and_wait(client, image)
    start = time.perf_counter()
    samples = [(arrival - stamp) / 1e6 for stamp, arrival in
               (publish_and_wait(client, image) for image in clip[1 + warmup:])]
    elapsed = time.perf_counter() - start
    client.call(Trigger, 'clear_target', Trigger.Request())
    return {'fps': len(samples) / elapsed, **percentiles(samples)}


def bare_tracking(name: str, precision: str, clip, first_box, warmup: int) -> dict:
    from siam_tracking_ros.core.benchmark import time_tracking
    from siam_tracking_ros.core.registry import build_tracker

    tracker = build_tracker(name, device='cpu', precision=precision, lost_threshold=0.0)
    figures = time_tracking(tracker, clip, first_box, warmup, stages=False)
    return {'fps': figures.fps, 'p50_ms': figures.p50_ms, 'p95_ms': figures.p95_ms,
            'mean_ms': figures.mean_ms, 'precision': tracker.precision}


def measure_node_vs_tracker(trackers, precision: str, sizes, frames: int, warmup: int,
                            threads: int | None, log_path) -> list[dict]:
    from siam_tracking_ros.ros.client import TrackerClient
    from siam_tracking_ros.tools.cmd_bench import bench_frames

    rows = []
    for name in trackers:
        parameters = {'tracker': name, 'device': 'cpu', 'precision': precision,
                      'lost_threshold': 0.0, 'publish_debug_image': False,
                      **({'torch_threads': threads} if threads else {})}
        namespace = f'/bench_{os.getpid()}_{len(rows)}'
        clips = {size: bench_frames(*size, 1 + warmup + frames) for size in sizes}
        # The bare tracker is timed before the node and this process's DDS client start: their
        # threads would otherwise share the CPU (and the GIL) with the timed track() calls.
        bares = {size: bare_tracking(name, precision, *clips[size], warmup) for size in sizes}
        with open(log_path, 'a') as log:
            process = start_tracker_node(namespace, 'uav', parameters, log)
            client = TrackerClient(namespace, 'bench_camera')
            try:
                client.wait_active(process)
                for width, height in sizes:
                    clip, first_box = clips[(width, height)]
                    bare = bares[(width, height)]
                    node = node_tracking(client, clip, first_box, warmup)
                    rows.append({'tracker': name, 'size': f'{width}x{height}',
                                 'precision': bare['precision'], 'tracker_fps': bare['fps'],
                                 'tracker_p95_ms': bare['p95_ms'], 'node_fps': node['fps'],
                                 'node_p50_ms': node['p50_ms'], 'node_p95_ms': node['p95_ms'],
                                 'fps_ratio': node['fps'] / bare['fps'],
                                 'extra_p95_ms': node['p95_ms'] - bare['p95_ms']})
            finally:
                client.close()
                stop_process(process)
    return rows


def print_node_vs_tracker(rows: list[dict]) -> None:
    print('Node next to the bare tracker (same clip, same precision; lock-step frames):')
    for row in rows:
        verdict = ('meets' if row['fps_ratio'] >= TARGET_NODE_FPS_RATIO and
                   row['extra_p95_ms'] <= TARGET_EXTRA_P95_MS else 'misses')
        print(f"  {row['tracker']:<18} {row['precision']:<5} {row['size']:>9}  tracker "
              f"{row['tracker_fps']:6.1f} fps p95 {row['tracker_p95_ms']:7.2f} ms | node "
              f"{row['node_fps']:6.1f} fps p95 {row['node_p95_ms']:7.2f} ms | "
              f"x{row['fps_ratio']:.2f} fps, {row['extra_p95_ms']:+.1f} ms p95 ({verdict} "
              f">= {TARGET_NODE_FPS_RATIO}x, <= +{TARGET_EXTRA_P95_MS:g} ms)")


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
    trackers = getattr(args, 'trackers', None) or [LATENCY_TRACKER]
    precisions = getattr(args, 'precisions', None) or ['auto']
    compared = [row for precision in precisions for row in measure_node_vs_tracker(
        trackers, precision, sizes, frames, int(getattr(args, 'warmup', 5)), threads, log_path)]
    print_node_vs_tracker(compared)
    print(f'tracker_node log: {log_path}')
    if getattr(args, 'json', None):
        args.json.write_text(json.dumps({'overhead': overhead, 'latency': latency,
                                         'node_vs_tracker': compared}, indent=2))
    return 0
