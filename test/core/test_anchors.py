import numpy as np
import pytest
import torch

from siam_tracking_ros.core import anchors
from siam_tracking_ros.core.anchors import IGNORED, NEGATIVE, POSITIVE, sample_anchor_labels


def test_anchor_shapes_hand_values():
    # Base area 64. r=0.33: int(sqrt(64/0.33)) = 13, int(13*0.33) = 4 -> 104 x 32 after scale 8.
    np.testing.assert_allclose(anchors.anchor_shapes(),
                               [[104, 32], [88, 40], [64, 64], [40, 80], [32, 96]])


def test_anchor_grid_layout():
    grid = anchors.anchor_grid(25)
    assert grid.shape == (5, 25, 25, 4)
    # Centres step by 8 from -(25 // 2) * 8 = -96; x varies along columns, y along rows.
    np.testing.assert_allclose(grid[0, 0, :, 0], np.arange(-96, 97, 8))
    np.testing.assert_allclose(grid[0, :, 0, 1], np.arange(-96, 97, 8))
    np.testing.assert_allclose(grid[3, 12, 12], [0, 0, 40, 80])
    # Even sizes are not symmetric in pysot: 4 // 2 = 2 -> -16, -8, 0, 8.
    np.testing.assert_allclose(anchors.anchor_grid(4)[0, 0, :, 0], [-16, -8, 0, 8])


def test_decode_hand_values():
    anchor = torch.tensor([[[[8.0, -16.0, 64.0, 32.0]]]])  # (1, 1, 1, 4)
    deltas = torch.tensor([0.5, -0.25, np.log(2.0), 0.0]).reshape(4, 1, 1, 1)
    decoded = anchors.decode_deltas(deltas, anchor)[0, 0, 0]
    # cx = 0.5*64 + 8, cy = -0.25*32 - 16, w = 2*64, h = 1*32.
    np.testing.assert_allclose(decoded.numpy(), [40.0, -24.0, 128.0, 32.0], rtol=1e-6)


@pytest.mark.parametrize('instance, base, expected', [
    (255, 8, 25), (287, 0, 21), (831, 8, 97), (831, 0, 89)])
def test_score_map_size(instance, base, expected):
    assert anchors.score_map_size(instance, 127, 8, base) == expected


def test_anchor_grid_rejects_empty_map():
    with pytest.raises(ValueError, match='positive'):
        anchors.anchor_grid(0)


def test_sampled_labels_keep_at_most_16_positives_of_64_and_ignore_the_rest():
    overlaps = np.concatenate([np.full(30, 0.8), np.full(20, 0.45), np.full(200, 0.1)])
    labels = sample_anchor_labels(overlaps, np.random.default_rng(0))
    assert (labels == POSITIVE).sum() == 16 and (labels == NEGATIVE).sum() == 48
    assert np.all(overlaps[labels == POSITIVE] > 0.6)
    assert np.all(overlaps[labels == NEGATIVE] < 0.3)
    assert np.all(labels[30:50] == IGNORED)  # between the thresholds: never a sample
    again = sample_anchor_labels(overlaps, np.random.default_rng(0))
    assert np.array_equal(labels, again)


def test_sampled_labels_take_all_when_there_are_few():
    overlaps = np.array([0.9, 0.7, 0.5, 0.2, 0.0])
    labels = sample_anchor_labels(overlaps, np.random.default_rng(1))
    assert labels.tolist() == [POSITIVE, POSITIVE, IGNORED, NEGATIVE, NEGATIVE]
