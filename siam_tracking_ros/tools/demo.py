"""`make demo`: the tracker node following a target in a streamed sequence, end to end.

Starts tracker_node (the profile's shipped default tracker) as a process, plays a sequence to it
as a camera over DDS (a synthetic one from `eval.synth`, or `--dataset DIR --sequence NAME` in
UAV123 layout), sets the target through `set_target` from the first ground-truth box, and writes
to `demo_out/`: the tracked frames with their boxes (PNG and `tracked.avi`), `detections.csv`,
`status.csv` and `node.log`. Prints frames, mean IoU against the ground truth and fps.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from siam_tracking_ros.core import boxes
from siam_tracking_ros.core.device import PRECISIONS
from siam_tracking_ros.ros.process import (start_tracker_node, stop_process,
                                           use_local_ros_environment)

FRAME_TIMEOUT_S = 30.0


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog='demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', type=Path, help='UAV123-layout folder to stream from')
    parser.add_argument('--sequence', help='sequence of --dataset (default: the first)')
    parser.add_argument('--frames', type=int, default=40, help='frames to stream (default 40)')
    parser.add_argument('--profile', default='uav', choices=('uav', 'vehicle'))
    parser.add_argument('--tracker', help="tracker to run (default: the profile's)")
    parser.add_argument('--device', default='auto', help="'auto', 'cpu' or 'cuda[:n]'")
    parser.add_argument('--precision', default='auto', choices=PRECISIONS,
                        help="the node's network arithmetic (default auto: fp16 on CUDA, bf16 on a "
                             'CPU with native bf16, fp32 otherwise)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the synthetic sequence')
    parser.add_argument('--out', type=Path, default=Path('demo_out'))
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error('--frames must be at least 2 (one to initialise, one to track)')
    if args.sequence and not args.dataset:
        parser.error('--sequence needs --dataset')
    return args


def load_frames(args) -> tuple[str, list[np.ndarray], np.ndarray]:
    """(name, BGR frames, 0-based ground truth with NaN rows) of the sequence to stream."""
    if args.dataset:
        from siam_tracking_ros.eval.datasets import open_dataset
        dataset = open_dataset(args.dataset, [args.sequence] if args.sequence else None)
        sequence = next(iter(dataset)).head(args.frames)
        frames = [sequence.read_frame(i) for i in range(len(sequence))]
        return sequence.name, frames, boxes.one_based_to_zero_based(sequence.ground_truth)
    from siam_tracking_ros.eval.synth import SynthConfig, generate_sequence
    sequence = generate_sequence(args.seed, 0, SynthConfig(frames=args.frames))
    return sequence.name, sequence.frames, boxes.one_based_to_zero_based(sequence.ground_truth)


def detection_box(message):
    """0-based (x, y, w, h) of the first detection, or None for an empty array."""
    if not message.detections:
        return None
    bbox = message.detections[0].bbox
    return (bbox.center.position.x - bbox.size_x / 2, bbox.center.position.y - bbox.size_y / 2,
            bbox.size_x, bbox.size_y)


def stream_and_track(client, frames, first_box):
    """Publish frame by frame (each once the previous one was answered); per-frame results."""
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from siam_tracking_ros.ros.image_codec import fill_raw_message
    from siam_tracking_ros.srv import SetTarget

    results, base_ns = [], time.time_ns()
    start = None
    for index, frame in enumerate(frames):
        stamp_ns = base_ns + index * 100_000_000
        stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
        client.camera.publish(fill_raw_message(Image(header=Header(stamp=stamp, frame_id='camera')),
                                               frame))
        if client.status.wait(stamp_ns, FRAME_TIMEOUT_S) is None:
            raise TimeoutError(f'the node did not answer frame {index} within {FRAME_TIMEOUT_S} s')
        if index == 0:
            x, y, w, h = (float(v) for v in first_box)
            reply = client.call(SetTarget, 'set_target', SetTarget.Request(
                x=x, y=y, width=w, height=h, stamp=stamp, target_id='demo', label='target'))
            if not reply.success:
                raise RuntimeError(f'set_target refused: {reply.message}')
            start = time.monotonic()
            results.append((stamp_ns, tuple(first_box), 1.0, 'INIT'))
            continue
        _, detections = client.detections.wait(stamp_ns, FRAME_TIMEOUT_S)
        _, status = client.status.wait(stamp_ns, FRAME_TIMEOUT_S)
        state = {0: 'IDLE', 1: 'TRACKING', 2: 'LOST'}[status.state]
        results.append((stamp_ns, detection_box(detections), status.score, state))
    fps = (len(frames) - 1) / (time.monotonic() - start)
    return results, fps


def frame_iou(box, truth) -> float:
    if box is None:
        return 0.0
    return float(boxes.iou(np.asarray(box, dtype=np.float64), truth))


def write_outputs(out: Path, frames, truth, results) -> float:
    """Frames with boxes (PNG + AVI) and detections.csv; returns the mean IoU over frames
    whose ground truth is known (the initial frame excluded)."""
    from siam_tracking_ros.ros.engine import NodeState
    from siam_tracking_ros.ros.messages import draw_track

    (out / 'frames').mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    video = cv2.VideoWriter(str(out / 'tracked.avi'), cv2.VideoWriter_fourcc(*'MJPG'), 10,
                            (width, height))
    ious = []
    with open(out / 'detections.csv', 'w', newline='') as handle:
        writer = csv.writer(handle)
        writer.writerow(['frame', 'stamp_ns', 'state', 'score', 'x', 'y', 'w', 'h', 'iou'])
        for index, (frame, gt, (stamp_ns, box, score, state)) in enumerate(
                zip(frames, truth, results)):
            known = not np.isnan(gt).any()
            iou = frame_iou(box, gt) if known else float('nan')
            if known and index > 0:
                ious.append(iou)
            writer.writerow([index, stamp_ns, state, f'{score:.4f}',
                             *(f'{v:.2f}' for v in (box or (float('nan'),) * 4)), f'{iou:.4f}'])
            canvas = frame.copy()
            node_state = NodeState.TRACKING if box is not None else NodeState.LOST
            draw_track(canvas, node_state, box, score, f'#{index}')
            cv2.imwrite(str(out / 'frames' / f'{index:06d}.png'), canvas)
            video.write(canvas)
    video.release()
    return float(np.mean(ious)) if ious else float('nan')


def write_status_log(out: Path, client) -> None:
    with open(out / 'status.csv', 'w', newline='') as handle:
        writer = csv.writer(handle)
        writer.writerow(['stamp_ns', 'arrival_ns', 'state', 'score', 'tracker', 'device', 'fps',
                         'latency_ms', 'frames_skipped'])
        for arrival_ns, status in client.status.all():
            writer.writerow([f'{status.header.stamp.sec}{status.header.stamp.nanosec:09d}',
                             arrival_ns, status.state, f'{status.score:.4f}', status.tracker,
                             status.device, f'{status.fps:.2f}', f'{status.latency_ms:.2f}',
                             status.frames_skipped])


def main(argv=None) -> int:
    args = parse_arguments(argv)
    use_local_ros_environment()
    from siam_tracking_ros.ros.client import TrackerClient

    name, frames, truth = load_frames(args)
    if np.isnan(truth[0]).any():
        print(f'error: sequence {name} has no ground truth on its first frame', file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    parameters = {'device': args.device, 'precision': args.precision, **({'tracker': args.tracker} if args.tracker else {})}
    namespace = f'/demo_{os.getpid()}'
    with open(args.out / 'node.log', 'w') as log:
        process = start_tracker_node(namespace, args.profile, parameters, log)
        client = TrackerClient(namespace, 'demo_camera')
        try:
            client.wait_active(process)
            results, fps = stream_and_track(client, frames, truth[0])
            write_status_log(args.out, client)
        finally:
            client.close()
            stop_process(process)
    mean_iou = write_outputs(args.out, frames, truth, results)
    print(f'sequence {name}: {len(frames)} frames, mean IoU {mean_iou:.3f} vs ground truth, '
          f'{fps:.1f} fps through the node; output in {args.out}/')
    return 0


if __name__ == '__main__':
    sys.exit(main())
