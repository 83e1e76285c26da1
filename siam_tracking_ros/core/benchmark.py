"""Per-frame speed of the registered trackers: ``python -m siam_tracking_ros.core.benchmark``.

Runs ``init`` once and ``track`` on a synthetic frame (a square drifting over noise) and prints
frames per second. Speed does not depend on the weights, so untrained networks are fine here;
``lost_threshold`` is 0 so every frame runs the normal (not widened) search.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from siam_tracking_ros.core.registry import build_tracker, list_trackers


def synthetic_frames(count: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    frames = []
    for index in range(count):
        frame = background.copy()
        x, y = width // 3 + 2 * index % (width // 3), height // 3
        frame[y:y + 60, x:x + 80] = (40, 200, 90)
        frames.append(frame)
    return frames


def _synchronise(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def measure(name: str, device: str, half: bool, frames: list[np.ndarray], warmup: int) -> float:
    """Mean frames per second of ``track`` over ``frames`` after ``warmup`` frames."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        tracker = build_tracker(name, device=device, half=half, lost_threshold=0.0)
    height, width = frames[0].shape[:2]
    tracker.init(frames[0], (width // 3, height // 3, 80, 60))
    for frame in frames[1:1 + warmup]:
        tracker.track(frame)
    _synchronise(tracker.device)
    start = time.perf_counter()
    timed = frames[1 + warmup:]
    for frame in timed:
        tracker.track(frame)
    _synchronise(tracker.device)
    return len(timed) / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--trackers', nargs='+', default=None, help='default: all registered')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--half', action='store_true', help='fp16 on CUDA')
    parser.add_argument('--frames', type=int, default=100, help='timed frames per tracker')
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--size', default='1280x720', help='frame WxH')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split('x'))
    frames = synthetic_frames(1 + args.warmup + args.frames, width, height)
    for name in args.trackers or list_trackers():
        fps = measure(name, args.device, args.half, frames, args.warmup)
        print(f'{name:28s} device={args.device} half={args.half} {width}x{height}: '
              f'{fps:8.1f} fps ({1000.0 / fps:.2f} ms/frame)')


if __name__ == '__main__':
    main()
