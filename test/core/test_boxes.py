import numpy as np
import pytest

from siam_tracking_ros.core import boxes


def test_one_based_round_trip():
    annotation = np.array([[1.0, 1.0, 10.0, 20.0], [5.5, 7.0, 3.0, 4.0]])
    zero = boxes.one_based_to_zero_based(annotation)
    np.testing.assert_allclose(zero, [[0.0, 0.0, 10.0, 20.0], [4.5, 6.0, 3.0, 4.0]])
    np.testing.assert_allclose(boxes.zero_based_to_one_based(zero), annotation)


def test_center_size_uses_pixel_centres():
    # A 10x20 box at the origin covers pixels 0..9 and 0..19: its centre pixel is (4.5, 9.5).
    np.testing.assert_allclose(boxes.xywh_to_center_size([0, 0, 10, 20]), [4.5, 9.5, 10, 20])
    np.testing.assert_allclose(boxes.center_size_to_xywh([4.5, 9.5, 10, 20]), [0, 0, 10, 20])
    # A single pixel is its own centre.
    np.testing.assert_allclose(boxes.xywh_to_center_size([3, 4, 1, 1]), [3, 4, 1, 1])


def test_corners_round_trip():
    box = np.array([2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(boxes.xywh_to_corners(box), [2, 3, 6, 8])
    np.testing.assert_allclose(boxes.corners_to_xywh([2, 3, 6, 8]), box)


def test_iou_hand_values():
    a = [0, 0, 10, 10]
    # Half overlap: intersection 50, union 150.
    assert boxes.iou(a, [5, 0, 10, 10]) == pytest.approx(1 / 3)
    assert boxes.iou(a, a) == pytest.approx(1.0)
    assert boxes.iou(a, [20, 20, 5, 5]) == 0.0
    # Contained 5x5 box: 25 / 100.
    assert boxes.iou(a, [2, 2, 5, 5]) == pytest.approx(0.25)


def test_iou_vectorised_broadcast():
    many = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [0, 0, 0, 10]], dtype=float)
    np.testing.assert_allclose(boxes.iou([0, 0, 10, 10], many), [1.0, 1 / 3, 0.0])
    np.testing.assert_allclose(boxes.iou(many, many), [1.0, 1.0, 0.0])


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match='shape'):
        boxes.xywh_to_center_size([1, 2, 3])


@pytest.mark.parametrize('box, message', [
    ([1, 2, 3], 'with 4 values'),
    ([0, 0, np.nan, 5], 'finite'),
    ([0, 0, 0, 5], 'positive'),
    ([0, 0, 5, -1], 'positive'),
    ([100, 10, 5, 5], 'does not overlap'),
    ([-10, 10, 5, 5], 'does not overlap'),
])
def test_validate_xywh_messages(box, message):
    with pytest.raises(ValueError, match=message):
        boxes.validate_xywh(box, (50, 60, 3))


def test_validate_xywh_accepts_partly_outside_box():
    np.testing.assert_allclose(boxes.validate_xywh([-3, -3, 5, 5], (50, 60, 3)), [-3, -3, 5, 5])
