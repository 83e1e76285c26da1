import math

import numpy as np
import pytest
import torch

from siam_tracking_ros.core import windows


def test_hanning_window_hand_values():
    # np.hanning(5) = [0, 0.5, 1, 0.5, 0].
    window = windows.hanning_window(5)
    assert window.shape == (5, 5)
    assert window[2, 2] == pytest.approx(1.0)
    assert window[1, 2] == pytest.approx(0.5)
    assert window[1, 1] == pytest.approx(0.25)
    assert window[0].sum() == pytest.approx(0.0)


def test_normalised_window_sums_to_one():
    window = windows.hanning_window(272, normalise=True)
    assert window.sum() == pytest.approx(1.0)
    assert np.unravel_index(window.argmax(), window.shape) in {(135, 135), (136, 136),
                                                             (135, 136), (136, 135)}


def test_window_size_must_be_positive():
    with pytest.raises(ValueError, match='positive'):
        windows.hanning_window(0)


def test_change_is_symmetric():
    np.testing.assert_allclose(windows.change([2.0, 0.5, 1.0]), [2.0, 2.0, 1.0])


def test_siamrpn_penalty_hand_value():
    # Target 10x10: padded side sqrt(20*20) = 20. Prediction 20x10: p = 15, sqrt(35*25).
    scale_change = math.sqrt(35 * 25) / 20
    ratio_change = 2.0  # aspect 1 -> 2
    expected = math.exp(-(ratio_change * scale_change - 1) * 0.05)
    assert windows.siamrpn_penalty(20.0, 10.0, 10.0, 10.0, 0.05) == pytest.approx(expected)
    # Same size and shape: no penalty.
    assert windows.siamrpn_penalty(10.0, 10.0, 10.0, 10.0, 0.05) == pytest.approx(1.0)


def test_siamrpn_penalty_torch_matches_numpy():
    widths = np.array([5.0, 20.0, 64.0])
    heights = np.array([7.0, 10.0, 64.0])
    expected = windows.siamrpn_penalty(widths, heights, 30.0, 40.0, 0.16)
    got = windows.siamrpn_penalty(torch.tensor(widths), torch.tensor(heights), 30.0, 40.0, 0.16)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), expected)


def test_siamfc_scales_and_penalties():
    np.testing.assert_allclose(windows.siamfc_scale_factors(3, 1.0375),
                               [1 / 1.0375, 1.0, 1.0375])
    np.testing.assert_allclose(windows.siamfc_scale_penalties(3, 0.9745), [0.9745, 1.0, 0.9745])
