"""Checks of target requests and node parameters, without DDS."""

import numpy as np
import pytest

from siam_tracking_ros.ros.parameters import PARAMETERS, check_parameters
from siam_tracking_ros.ros.requests import TargetRequestError, check_box, check_stamp, rescale_box

SHAPE = (240, 320, 3)
DEFAULTS = {name: spec.default for name, spec in PARAMETERS.items()}


@pytest.mark.parametrize('box,reason', [
    ((float('nan'), 10, 20, 20), 'box must be finite'),
    ((10, 10, float('inf'), 20), 'box must be finite'),
    ((10, 10, 0, 20), 'must be positive'),
    ((10, 10, 20, -1), 'must be positive'),
    ((10, 10, 0.3, 0.3), 'smaller than the minimum side of 4 pixels'),
    ((10, 10, 3.9, 50), 'smaller than the minimum side'),
    ((0, 0, 1e9, 1e9), 'larger than the 320x240 image'),
    ((0, 0, 1e150, 10), 'larger than the 320x240 image'),
    ((0, 0, 321, 10), 'larger than the 320x240 image'),
    ((320, 10, 20, 20), 'does not overlap the 320x240 image'),
    ((-20, 10, 20, 20), 'does not overlap'),
    ((10, -1e9, 20, 20), 'does not overlap'),
])
def test_absurd_boxes_are_refused_with_the_reason(box, reason):
    with pytest.raises(TargetRequestError, match=reason):
        check_box(box, SHAPE)


def test_boxes_on_the_edge_and_the_whole_image_are_accepted():
    np.testing.assert_array_equal(check_box((-10, -10, 20, 20), SHAPE), [-10, -10, 20, 20])
    np.testing.assert_array_equal(check_box((0, 0, 320, 240), SHAPE), [0, 0, 320, 240])
    np.testing.assert_array_equal(check_box((300, 200, 4, 4), SHAPE), [300, 200, 4, 4])


@pytest.mark.parametrize('sec,nanosec,reason', [(-1, 0, 'sec must not be negative'),
                                                (5, 1_000_000_000, r'nanosec must be in \[0, 1e9\)'),
                                                (5, 4_294_967_295, 'nanosec must be in')])
def test_invalid_stamp_fields_are_refused(sec, nanosec, reason):
    with pytest.raises(TargetRequestError, match=reason):
        check_stamp(sec, nanosec)


def test_valid_stamps_convert_to_nanoseconds():
    assert check_stamp(0, 0) == 0 and check_stamp(3, 999_999_999) == 3_999_999_999


def test_a_box_follows_a_change_of_resolution():
    np.testing.assert_allclose(rescale_box((100, 50, 40, 20), (720, 1280), (360, 640)),
                               [50, 25, 20, 10])


def test_a_tracker_without_shipped_weights_needs_a_weights_file(tmp_path):
    reason = check_parameters({'tracker': 'siamrpn_r50_l234'}, DEFAULTS)
    assert reason and "no weights ship for tracker 'siamrpn_r50_l234'" in reason
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'')
    assert check_parameters({'tracker': 'siamrpn_r50_l234', 'weights': str(checkpoint)},
                            DEFAULTS) is None
    current = {**DEFAULTS, 'tracker': 'siamrpn_r50_l234', 'weights': str(checkpoint)}
    assert 'no weights ship' in check_parameters({'weights': ''}, current)


def test_parameters_are_checked_together_against_the_resulting_state():
    assert check_parameters({'lost_threshold': 0.5, 'recover_threshold': 0.6}, DEFAULTS) is None
    assert 'thresholds must satisfy' in check_parameters({'lost_threshold': 0.5}, DEFAULTS)
    assert 'catch_up_max_s' in check_parameters({'catch_up_max_s': float('nan')}, DEFAULTS)
    assert 'max_pixels' in check_parameters({'max_pixels': 0}, DEFAULTS)
    assert check_parameters(DEFAULTS, DEFAULTS) is None
