"""Box proposals around a clicked pixel."""

import numpy as np
import pytest

from siam_tracking_ros.ros.point_box import default_box, propose_box


def grey_scene(height=120, width=160) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    texture = (100 + 6 * np.sin(rows / 3.0) + 6 * np.cos(cols / 4.0)).astype(np.uint8)
    return np.repeat(texture[:, :, None], 3, axis=2)


def test_coloured_object_is_boxed_tightly():
    image = grey_scene()
    image[50:70, 60:90] = (30, 30, 220)  # a red car, 30 x 20 pixels
    proposal = propose_box(image, 75, 60, box_size=24)
    assert proposal.method == 'contrast'
    np.testing.assert_allclose(proposal.box, (60, 50, 30, 20), atol=1)


def test_click_beside_a_small_object_snaps_to_it():
    image = grey_scene()
    image[40:48, 40:48] = (240, 240, 240)
    proposal = propose_box(image, 49, 50, box_size=16)
    assert proposal.method == 'contrast'
    np.testing.assert_allclose(proposal.box, (40, 40, 8, 8), atol=1)


def test_flat_region_falls_back_to_the_default_size():
    proposal = propose_box(grey_scene(), 80, 60, box_size=30)
    assert proposal.method == 'default'
    assert proposal.box == (65.0, 45.0, 30.0, 30.0)


def test_default_box_is_clipped_at_the_border():
    assert default_box((100, 200, 3), 5, 98, 20) == (0.0, 88.0, 15.0, 12.0)


def test_object_larger_than_the_window_falls_back():
    image = grey_scene()
    image[:, 40:140] = (0, 200, 0)
    assert propose_box(image, 80, 60, box_size=20).method == 'default'


@pytest.mark.parametrize('x,y', [(-1, 5), (160, 5), (5, 120), (float('nan'), 3)])
def test_point_off_the_image_is_refused(x, y):
    with pytest.raises(ValueError, match='outside the 160x120 image'):
        propose_box(grey_scene(), x, y, 20)


def test_tiny_box_size_is_refused():
    with pytest.raises(ValueError, match='at least 2 pixels'):
        propose_box(grey_scene(), 10, 10, 1)
