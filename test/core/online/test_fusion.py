"""Eq. (5) fusion helpers: the authors' upsampling and resizes, normalisation, weighted sum."""

import math

import numpy as np
import pytest
import torch

from siam_tracking_ros.core.online.fusion import (antialiased_bicubic_resize,
                                                  fourier_upsample, fuse_scores,
                                                  min_max_normalise, sample_at_offsets,
                                                  sum_normalise)


def _authors_fourier_upsample(scores: torch.Tensor, out_size: int) -> torch.Tensor:
    """The authors' `localize_target` path on one N x N map with the current FFT API: centred
    half spectrum (an even size's Nyquist row kept at both ends), divided by N^2, shifted by pi,
    zero-padded to out_size, inverted and rescaled, then rolled by (out_size + 1) // 2."""
    size = scores.shape[-1]
    spectrum = torch.fft.rfft2(scores.double())
    spectrum = torch.cat([spectrum[(size + 1) // 2:], spectrum[:size // 2 + 1]], 0) / size ** 2
    rows = torch.arange(-(spectrum.shape[0] // 2), spectrum.shape[0] // 2 + 1,
                        dtype=torch.float64)[:, None]
    cols = torch.arange(spectrum.shape[1], dtype=torch.float64)[None, :]
    spectrum = spectrum * torch.exp(1j * math.pi * rows) * torch.exp(1j * math.pi * cols)
    padded = torch.zeros(out_size, out_size // 2 + 1, dtype=spectrum.dtype)
    half = spectrum.shape[0] // 2
    padded[:half + 1, :spectrum.shape[1]] = spectrum[half:]
    padded[out_size - half:, :spectrum.shape[1]] = spectrum[:half]
    values = torch.fft.irfft2(padded, s=(out_size, out_size)) * out_size ** 2
    roll = (out_size + 1) // 2
    return torch.roll(values, shifts=(-roll, -roll), dims=(0, 1))


@pytest.mark.parametrize("size, out_size", [(26, 287), (22, 255), (7, 31)])
def test_fourier_upsample_is_the_authors_spectral_interpolation(size, out_size):
    scores = torch.randn(size, size, generator=torch.Generator().manual_seed(size),
                         dtype=torch.float64)
    upsampled = fourier_upsample(scores[None], out_size)[0]
    torch.testing.assert_close(upsampled, _authors_fourier_upsample(scores, out_size))


def test_fourier_upsample_keeps_a_smooth_map_and_centres_cell_half_the_size():
    grid = torch.arange(26, dtype=torch.float64)
    smooth = torch.exp(-((grid[None, :] - 13.0) ** 2 + (grid[:, None] - 13.0) ** 2) / 18.0)
    upsampled = fourier_upsample(smooth[None], 287)[0]
    assert divmod(int(upsampled.argmax()), 287) == (143, 143)
    # The centre pixel reads cell 13 (up to the doubled Nyquist term, which the authors' even-size
    # spectrum counts at both ends).
    assert float(upsampled[143, 143]) == pytest.approx(float(smooth[13, 13]), abs=1e-4)
    with pytest.raises(ValueError, match="B x H x H"):
        fourier_upsample(torch.zeros(4, 4), 9)


def test_antialiased_bicubic_resize_is_pils_float_resize():
    image_module = pytest.importorskip("PIL.Image", reason="Pillow (a matplotlib dependency) "
                                       "gives the reference resize")
    maps = torch.randn(287, 287, generator=torch.Generator().manual_seed(0))
    expected = np.asarray(image_module.fromarray(maps.numpy()).resize(
        (21, 21), image_module.BICUBIC))
    resized = antialiased_bicubic_resize(maps[None], 21)[0]
    np.testing.assert_allclose(resized.numpy(), expected, atol=1e-5)


def test_antialiased_resize_averages_and_keeps_constants():
    resized = antialiased_bicubic_resize(torch.full((1, 40, 40), 3.0), 7)
    torch.testing.assert_close(resized, torch.full((1, 7, 7), 3.0))
    # Downscaling 10x spreads one bright pixel over the output cell that covers it, lowered.
    impulse = torch.zeros(1, 50, 50)
    impulse[0, 25, 25] = 1.0
    resized = antialiased_bicubic_resize(impulse, 5)[0]
    assert divmod(int(resized.argmax()), 5) == (2, 2) and float(resized.max()) < 0.2


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
        antialiased_bicubic_resize(torch.zeros(4, 4), 3)


def test_sum_normalise_shifts_to_zero_and_sums_to_one():
    scores = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    torch.testing.assert_close(sum_normalise(scores), torch.tensor([[0.0, 0.125], [0.25, 0.625]]))


def test_sample_at_offsets_reads_cells_and_interpolates_between_them():
    online = torch.arange(25, dtype=torch.float32).reshape(5, 5)     # value = 5 * row + col
    offsets = torch.tensor([[0.0, 0.0], [8.0, -8.0], [4.0, 0.0], [100.0, 0.0]])
    torch.testing.assert_close(sample_at_offsets(online, 8.0, offsets),
                               torch.tensor([12.0, 8.0, 12.5, 14.0]))
