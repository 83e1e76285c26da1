"""The node's parameters: defaults, descriptions and the checks that reject bad values.

Kept free of rclpy so the checks are testable directly; the node turns the table into
declared parameters and calls :func:`check_parameters` from its on-set callback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from siam_tracking_ros.core.device import check_precision, resolve_device
from siam_tracking_ros.core.registry import list_trackers, shipped_weights


@dataclass(frozen=True)
class ParameterSpec:
    default: Any
    description: str
    # Fixed once the node runs (the subscription is built from it); change it by restarting.
    read_only: bool = False


PARAMETERS: dict[str, ParameterSpec] = {
    'autostart': ParameterSpec(True, 'configure and activate at start (plain `ros2 run` works)',
                               read_only=True),
    'tracker': ParameterSpec('siamfc_alexnet', 'registry name of the tracker'),
    'weights': ParameterSpec('', 'checkpoint path; empty uses the weights the package ships'),
    'device': ParameterSpec('auto', "'auto', 'cpu', 'cuda' or 'cuda:N'"),
    'precision': ParameterSpec('auto', "network arithmetic: 'auto' (fp16 on CUDA, bf16 on a CPU "
                                       "with native bf16, else fp32), 'fp32', 'bf16' or 'fp16'"),
    'half': ParameterSpec(False, "older spelling of precision 'fp16' (CUDA only): true overrides "
                                 'precision on CUDA, ignored on CPU'),
    'torch_threads': ParameterSpec(0, 'CPU threads of the network (torch intra-op threads, set in '
                                      'the tracking thread); 0: one per available core',
                                   read_only=True),
    'profile': ParameterSpec('uav', "camera profile the parameters came from: 'uav' or 'vehicle'"),
    'lost_threshold': ParameterSpec(0.2, 'score below which the target is reported LOST'),
    'recover_threshold': ParameterSpec(0.4, 'score at which a LOST target is TRACKING again'),
    'history_size': ParameterSpec(30, 'frames kept for initialising on a stamped (older) frame'),
    'history_max_bytes': ParameterSpec(256 * 1024 * 1024,
                                       'memory the frame history may hold (messages as received '
                                       'plus decoded copies); the oldest frames go first'),
    'max_pixels': ParameterSpec(4096 * 4096, 'frames with more pixels are dropped (counted in '
                                             'status dropped_too_large) before being decoded'),
    'catch_up_max_frames': ParameterSpec(30, 'after a stamped set_target, at most this many '
                                             'later frames are tracked before the newest'),
    'catch_up_max_s': ParameterSpec(2.0, 'after a stamped set_target, catching up over the '
                                         'later frames stops after this many seconds'),
    'size_change_frames': ParameterSpec(10, 'consecutive frames of another size before the '
                                            'targets move to the new size (fewer are dropped)'),
    'max_targets': ParameterSpec(8, 'targets tracked at once (one batched pass per frame); a '
                                    'request for a new id beyond it is refused, and lowering it '
                                    'keeps the targets already tracked'),
    'publish_debug_image': ParameterSpec(True, 'draw the box on debug_image while subscribed'),
    'input_transport': ParameterSpec('raw', "'raw' (image) or 'compressed' (image/compressed)",
                                     read_only=True),
    'reliable_qos': ParameterSpec(False, 'subscribe reliable instead of best effort (sensor data)',
                                  read_only=True),
    'target_label': ParameterSpec('', 'label reported for a target whose request names none'),
    'point_box_size': ParameterSpec(48.0, 'side in pixels of the box proposed around a clicked '
                                          'point when no object stands out there'),
}

# Changing one of these loads a new tracker; the thresholds are set on the running one.
MODEL_PARAMETERS = ('tracker', 'weights', 'device', 'precision', 'half')
THRESHOLD_PARAMETERS = ('lost_threshold', 'recover_threshold')
HISTORY_PARAMETERS = ('history_size', 'history_max_bytes')
ENGINE_PARAMETERS = ('catch_up_max_frames', 'catch_up_max_s', 'size_change_frames',
                     'max_targets')


def _check_tracker(value, values) -> str | None:
    known = list_trackers()
    if value not in known:
        return f"unknown tracker '{value}'; known trackers: {', '.join(known)}"
    if not values['weights'] and shipped_weights(value) is None:
        return (f"no weights ship for tracker '{value}': its network would be randomly "
                'initialised and not track; set weights to a checkpoint file for it (in the same '
                'request)')
    return None


def _check_weights(value, values) -> str | None:
    if value and not Path(value).expanduser().is_file():
        return f"weights file '{value}' does not exist"
    if not value and values['tracker'] in list_trackers():
        return _check_tracker(values['tracker'], values)
    return None


def _check_device(value, _values) -> str | None:
    try:
        resolve_device(value)  # also refuses a CUDA device this machine does not have
    except ValueError as error:
        return str(error)
    return None


def _check_precision(value, _values) -> str | None:
    try:
        check_precision(value)
    except ValueError as error:
        return str(error)
    return None


def _check_torch_threads(value, _values) -> str | None:
    if value < 0:
        return f'torch_threads must be 0 (one per core) or more, got {value}'
    return None


def _check_choice(*choices: str) -> Callable:
    def check(value, _values):
        if value not in choices:
            return f"'{value}' is not one of {', '.join(choices)}"
        return None
    return check


def _check_thresholds(_value, values) -> str | None:
    lost, recover = values['lost_threshold'], values['recover_threshold']
    if not (math.isfinite(lost) and math.isfinite(recover) and 0.0 <= lost <= recover <= 1.0):
        return (f'thresholds must satisfy 0 <= lost_threshold ({lost}) <= '
                f'recover_threshold ({recover}) <= 1')
    return None


def _check_history_size(value, _values) -> str | None:
    if not 1 <= value <= 1000:
        return f'history_size must be between 1 and 1000 frames, got {value}'
    return None


def _check_integer_range(name: str, low: int, high: int, unit: str) -> Callable:
    def check(value, _values):
        if not low <= value <= high:
            return f'{name} must be between {low} and {high} {unit}, got {value}'
        return None
    return check


def _check_catch_up_seconds(value, _values) -> str | None:
    if not (math.isfinite(value) and 0.0 < value <= 60.0):
        return f'catch_up_max_s must be in (0, 60] seconds, got {value}'
    return None


def _check_point_box_size(value, _values) -> str | None:
    if not (math.isfinite(value) and value >= 2.0):
        return f'point_box_size must be at least 2 pixels, got {value}'
    return None


_CHECKS: dict[str, Callable[[Any, dict], str | None]] = {
    'tracker': _check_tracker,
    'weights': _check_weights,
    'device': _check_device,
    'precision': _check_precision,
    'torch_threads': _check_torch_threads,
    'profile': _check_choice('uav', 'vehicle'),
    'input_transport': _check_choice('raw', 'compressed'),
    'lost_threshold': _check_thresholds,
    'recover_threshold': _check_thresholds,
    'history_size': _check_history_size,
    'history_max_bytes': _check_integer_range('history_max_bytes', 1 << 20, 1 << 40, 'bytes'),
    'max_pixels': _check_integer_range('max_pixels', 1, 1 << 30, 'pixels'),
    'catch_up_max_frames': _check_integer_range('catch_up_max_frames', 0, 1000, 'frames'),
    'catch_up_max_s': _check_catch_up_seconds,
    'size_change_frames': _check_integer_range('size_change_frames', 1, 10000, 'frames'),
    'max_targets': _check_integer_range('max_targets', 1, 64, 'targets'),
    'point_box_size': _check_point_box_size,
}


def check_parameters(changes: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The reason to reject ``changes`` given the ``current`` values, or None when valid.

    Cross-parameter rules (lost <= recover) see the changed values together, so both
    thresholds can move in one request.
    """
    merged = {**current, **changes}
    for name, value in changes.items():
        check = _CHECKS.get(name)
        reason = check(value, merged) if check else None
        if reason:
            return f'{name}: {reason}'
    return None
