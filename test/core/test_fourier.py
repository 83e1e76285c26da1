"""DSiam's Fourier-domain regression (eqs. 2-4) against an explicit circulant solve, and its
transform layer against the reference's arithmetic (Hann window, lambda x H x W, mixing)."""
import numpy as np
import pytest
import torch

from siam_tracking_ros.core.fourier import (
    feature_window,
    learn_transform_layer,
    solve_transform,
    windowed,
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


def reference_layer_output(source, target, features, regulariser, rate):
    """The authors' update_change + CirConv arithmetic, written out with full numpy FFTs.

    Learning: alphaf = F(h.Y) / (F(h.X) conj(F(h.X)) / N + lambda), featf = F(h.X).
    Applying: (1 - rate) f + rate real(F^-1(alphaf . F(h.f) conj(featf) / N)).
    """
    height, width = source.shape[-2:]
    cells = height * width
    window = np.outer(np.hanning(height), np.hanning(width))  # MATLAB hann == numpy hanning
    featf = np.fft.fft2(source * window)
    alphaf = np.fft.fft2(target * window) / (featf * np.conj(featf) / cells + regulariser)
    kfeatf = np.fft.fft2(features * window) * np.conj(featf) / cells
    transformed = np.real(np.fft.ifft2(alphaf * kfeatf))
    return (1 - rate) * features + rate * transformed


@pytest.mark.parametrize("size", [(6, 6), (5, 4)])
def test_transform_layer_computes_what_the_reference_computes(size):
    generator = np.random.default_rng(10)
    source, target, features = (generator.standard_normal((3, *size)) for _ in range(3))
    layer = learn_transform_layer(torch.from_numpy(source), torch.from_numpy(target), 0.3, 0.49)
    expected = reference_layer_output(source, target, features, 0.3, 0.49)
    np.testing.assert_allclose(layer.apply(torch.from_numpy(features)).numpy(), expected,
                               atol=1e-6)


def test_lambda_is_scaled_by_the_number_of_cells():
    generator = torch.Generator().manual_seed(11)
    source = torch.randn(2, 4, 5, generator=generator, dtype=torch.float64)
    target = torch.randn(2, 4, 5, generator=generator, dtype=torch.float64)
    layer = learn_transform_layer(source, target, 0.25, 1.0)
    scaled = solve_transform(windowed(source), windowed(target), 0.25 * 20)
    torch.testing.assert_close(layer.transform.spectrum, scaled.spectrum)
    unscaled = solve_transform(windowed(source), windowed(target), 0.25)
    assert not torch.allclose(layer.transform.spectrum, unscaled.spectrum)


def test_hann_window_is_laid_on_the_features_before_every_fft():
    window = feature_window(6, 4)
    rows = 0.5 * (1 - np.cos(2 * np.pi * np.arange(6) / 5))  # MATLAB hann(6), zero at both ends
    cols = 0.5 * (1 - np.cos(2 * np.pi * np.arange(4) / 3))
    np.testing.assert_allclose(window.numpy(), np.outer(rows, cols), atol=1e-7)
    generator = torch.Generator().manual_seed(12)
    source, target, features = (torch.randn(3, 6, 4, generator=generator, dtype=torch.float64)
                                for _ in range(3))
    border = torch.zeros(3, 6, 4, dtype=torch.float64)
    border[:, 0, :] = 5.0
    border[:, :, -1] = -3.0
    # Learning: cells where the window is zero cannot change the learned transform.
    layer = learn_transform_layer(source, target, 0.1, 0.29)
    torch.testing.assert_close(learn_transform_layer(source + border, target - border, 0.1,
                                                     0.29).transform.spectrum,
                               layer.transform.spectrum)
    # Applying: they reach the output only through the untransformed share (1 - rate) f.
    torch.testing.assert_close(layer.apply(features + border) - layer.apply(features),
                               0.71 * border)


def test_layer_mixes_its_input_with_the_transformed_features():
    generator = torch.Generator().manual_seed(13)
    source, target, features = (torch.randn(2, 5, 5, generator=generator, dtype=torch.float64)
                                for _ in range(3))
    full = learn_transform_layer(source, target, 0.5, 1.0)
    transformed = full.transform.apply(windowed(features))
    torch.testing.assert_close(full.apply(features), transformed)
    mixed = learn_transform_layer(source, target, 0.5, 0.49)
    torch.testing.assert_close(mixed.apply(features), 0.51 * features + 0.49 * transformed)
    # Near-zero lambda: T maps h.X onto h.Y, so the layer turns X into (1 - r) X + r h.Y.
    exact = learn_transform_layer(source, target, 1e-12, 0.49)
    torch.testing.assert_close(exact.apply(source), 0.51 * source + 0.49 * windowed(target),
                               atol=1e-5, rtol=0)


def test_layer_keeps_the_features_dtype_and_solves_in_float32():
    generator = torch.Generator().manual_seed(14)
    source = torch.randn(1, 4, 6, 6, generator=generator).to(torch.bfloat16)
    target = torch.randn(1, 4, 6, 6, generator=generator).to(torch.bfloat16)
    layer = learn_transform_layer(source, target, 1.0, 0.49)
    assert layer.transform.spectrum.dtype == torch.complex64
    output = layer.apply(torch.randn(3, 4, 6, 6, generator=generator).to(torch.bfloat16))
    assert output.dtype == torch.bfloat16 and output.shape == (3, 4, 6, 6)


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
    with pytest.raises(ValueError, match="rate must lie in"):
        learn_transform_layer(features, features, 1.0, 0.0)
    with pytest.raises(ValueError, match="window size must be positive"):
        feature_window(0, 3)
