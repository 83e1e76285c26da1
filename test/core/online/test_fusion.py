"""Eq. (5) fusion helpers: grid resampling, normalisation, weighted sum."""

import pytest
import torch

from siam_tracking_ros.core.online.fusion import (fuse_scores, min_max_normalise,
                                                  resample_to_grid, sample_at_offsets,
                                                  sum_normalise)


def test_same_stride_takes_the_central_cells_exactly():
    online = torch.randn(3, 23, 23, generator=torch.Generator().manual_seed(0))
    resampled = resample_to_grid(online, 8.0, 17, 8.0)
    assert resampled.shape == (3, 17, 17)
    assert torch.allclose(resampled, online[:, 3:20, 3:20], atol=1e-5)


def test_same_span_is_a_plain_bicubic_resize():
    online = torch.rand(1, 9, 9, generator=torch.Generator().manual_seed(1))
    resampled = resample_to_grid(online, 4.0, 17, 2.0)
    expected = torch.nn.functional.interpolate(online[:, None], size=(17, 17), mode="bicubic",
                                               align_corners=True)[:, 0]
    assert torch.allclose(resampled, expected, atol=1e-5)


def test_half_cell_offsets_interpolate_a_linear_ramp_exactly():
    ramp = torch.arange(32, dtype=torch.float32).repeat(32, 1)[None]   # value = column index
    resampled = resample_to_grid(ramp, 8.0, 25, 8.0)
    # The 25-grid centre sits 3.5 cells in from the 32-map's edge cell.
    assert torch.allclose(resampled[0, 0], torch.arange(25, dtype=torch.float32) + 3.5, atol=1e-4)


def test_normalise_and_fuse():
    scores = torch.tensor([[2.0, 4.0], [6.0, 10.0]])
    normalised = min_max_normalise(scores)
    assert torch.allclose(normalised, torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    assert torch.equal(min_max_normalise(torch.ones(2, 2)), torch.zeros(2, 2))
    siamese = torch.full((5, 2, 2), 0.5)
    fused = fuse_scores(siamese, normalised[None], 0.8)
    assert fused.shape == (5, 2, 2)
    assert torch.allclose(fused[3], 0.8 * normalised + 0.1)
    with pytest.raises(ValueError, match="lambda"):
        fuse_scores(siamese, normalised, 1.5)
    with pytest.raises(ValueError, match="B x M x M"):
        resample_to_grid(torch.zeros(4, 4), 8.0, 3, 8.0)


def test_sum_normalise_shifts_to_zero_and_sums_to_one():
    scores = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    torch.testing.assert_close(sum_normalise(scores), torch.tensor([[0.0, 0.125], [0.25, 0.625]]))


def test_sample_at_offsets_reads_cells_and_interpolates_between_them():
    online = torch.arange(25, dtype=torch.float32).reshape(5, 5)     # value = 5 * row + col
    offsets = torch.tensor([[0.0, 0.0], [8.0, -8.0], [4.0, 0.0], [100.0, 0.0]])
    torch.testing.assert_close(sample_at_offsets(online, 8.0, offsets),
                               torch.tensor([12.0, 8.0, 12.5, 14.0]))
