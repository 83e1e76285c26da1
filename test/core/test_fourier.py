"""DSiam's Fourier-domain regularised regression (eqs. 2-4) against an explicit circulant solve."""
import numpy as np
import pytest
import torch

from siam_tracking_ros.core.fourier import (
    RegressionStatistics,
    gaussian_weight_map,
    regression_statistics,
    solve_transform,
    transform_from_statistics,
)


def circulant_operator(features: np.ndarray) -> np.ndarray:
    """Matrix A with A @ t.ravel() == (t * features).ravel() for 2-D circular convolution."""
    height, width = features.shape
    operator = np.zeros((height * width, height * width))
    for out_y in range(height):
        for out_x in range(width):
            for k_y in range(height):
                for k_x in range(width):
                    operator[out_y * width + out_x, k_y * width + k_x] = features[
                        (out_y - k_y) % height, (out_x - k_x) % width]
    return operator


def direct_ridge_solution(source: np.ndarray, target: np.ndarray, regulariser: float) -> np.ndarray:
    operator = circulant_operator(source)
    normal_matrix = operator.T @ operator + regulariser * np.eye(operator.shape[1])
    return np.linalg.solve(normal_matrix, operator.T @ target.ravel()).reshape(source.shape)


@pytest.mark.parametrize("size", [(5, 5), (4, 6)])
def test_closed_form_equals_direct_least_squares(size):
    generator = np.random.default_rng(3)
    channels = 3
    source = generator.standard_normal((channels, *size))
    target = generator.standard_normal((channels, *size))
    regulariser = 0.7
    solved = solve_transform(torch.from_numpy(source), torch.from_numpy(target), regulariser)
    spatial = solved.spatial().numpy()
    for channel in range(channels):
        expected = direct_ridge_solution(source[channel], target[channel], regulariser)
        np.testing.assert_allclose(spatial[channel], expected, atol=1e-5)


def test_applying_a_transform_is_circular_convolution():
    generator = np.random.default_rng(4)
    source = generator.standard_normal((4, 5))
    target = generator.standard_normal((4, 5))
    solved = solve_transform(torch.from_numpy(source), torch.from_numpy(target), 0.3)
    kernel = solved.spatial().numpy()
    applied = solved.apply(torch.from_numpy(source)).numpy()
    expected = (circulant_operator(source) @ kernel.ravel()).reshape(source.shape)
    np.testing.assert_allclose(applied, expected, atol=1e-10)


def test_vanishing_regulariser_maps_first_features_onto_latest():
    generator = torch.Generator().manual_seed(5)
    first = torch.randn(2, 8, 6, 6, generator=generator, dtype=torch.float64)
    latest = torch.randn(2, 8, 6, 6, generator=generator, dtype=torch.float64)
    variation = solve_transform(first, latest, 1e-9)  # eq. (6) with lambda_v -> 0
    torch.testing.assert_close(variation.apply(first), latest, atol=1e-5, rtol=0)


def test_regulariser_shrinks_the_transform():
    generator = torch.Generator().manual_seed(6)
    source = torch.randn(3, 6, 6, generator=generator)
    target = torch.randn(3, 6, 6, generator=generator)
    weak = solve_transform(source, target, 1e-3).spatial().norm()
    strong = solve_transform(source, target, 1e3).spatial().norm()
    assert strong < 0.1 * weak


def test_transform_is_differentiable_in_the_regulariser():
    generator = torch.Generator().manual_seed(7)
    source = torch.randn(2, 5, 5, generator=generator, dtype=torch.float64)
    target = torch.randn(2, 5, 5, generator=generator, dtype=torch.float64)
    regulariser = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)

    def residual(lam):
        return (solve_transform(source, target, lam).apply(source) - target).pow(2).sum()

    assert torch.autograd.gradcheck(residual, (regulariser,))
    residual(regulariser).backward()
    assert regulariser.grad > 0  # more regularisation fits the target less well


def test_background_suppression_raises_foreground_energy_share():
    generator = torch.Generator().manual_seed(8)
    size = 22
    region = torch.rand(16, size, size, generator=generator) + 0.5
    weights = gaussian_weight_map(size, size, sigma_y=3.0, sigma_x=3.0)
    highlighted = region * weights  # G-bar of eq. (7)
    suppression = solve_transform(region, highlighted, 10.0)  # eq. (8), lambda_w = 10
    suppressed = suppression.apply(region)

    def foreground_share(features):
        energy = features.pow(2).sum(dim=0)
        centre = energy[size // 2 - 4:size // 2 + 4, size // 2 - 4:size // 2 + 4]
        return float(centre.sum() / energy.sum())

    assert foreground_share(suppressed) > foreground_share(region) + 0.2


def test_blended_statistics_interpolate_both_spectra():
    generator = torch.Generator().manual_seed(9)
    older = regression_statistics(torch.randn(3, 4, 4, generator=generator),
                                  torch.randn(3, 4, 4, generator=generator))
    newer = regression_statistics(torch.randn(3, 4, 4, generator=generator),
                                  torch.randn(3, 4, 4, generator=generator))
    blended = older.blend(newer, 0.25)
    torch.testing.assert_close(blended.cross, 0.75 * older.cross + 0.25 * newer.cross)
    torch.testing.assert_close(blended.energy, 0.75 * older.energy + 0.25 * newer.energy)
    assert isinstance(transform_from_statistics(blended, 1.0).spectrum, torch.Tensor)


def test_gaussian_weight_map_peaks_at_the_centre():
    weights = gaussian_weight_map(5, 7, sigma_y=1.0, sigma_x=2.0)
    assert weights.shape == (5, 7)
    assert float(weights[2, 3]) == pytest.approx(1.0)
    assert float(weights[2, 5]) == pytest.approx(np.exp(-0.5))
    torch.testing.assert_close(weights, weights.flip(0).flip(1))


def test_bad_inputs_are_rejected_with_specific_messages():
    features = torch.zeros(2, 4, 4)
    with pytest.raises(ValueError, match="same shape"):
        solve_transform(features, torch.zeros(2, 4, 5), 1.0)
    with pytest.raises(ValueError, match="lambda must be positive"):
        solve_transform(features, features, 0.0)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        solve_transform(torch.zeros(4), torch.zeros(4), 1.0)
    with pytest.raises(ValueError, match="cannot be applied"):
        solve_transform(features, features, 1.0).apply(torch.zeros(2, 5, 5))
    statistics = regression_statistics(features, features)
    with pytest.raises(ValueError, match="blending rate"):
        statistics.blend(statistics, 1.5)
    with pytest.raises(ValueError, match="cannot blend"):
        statistics.blend(RegressionStatistics(statistics.cross[:1], statistics.energy[:1],
                                              statistics.size), 0.5)
