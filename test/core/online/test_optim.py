"""Conjugate gradient and Gauss-Newton on problems with known solutions."""

import pytest
import torch

from siam_tracking_ros.core.online.optim import (
    concat_residuals, conjugate_gradient, gauss_newton, inner_product)


def _random_spd(n: int, generator: torch.Generator) -> torch.Tensor:
    basis = torch.randn(n, n, generator=generator, dtype=torch.float64)
    return basis @ basis.T + n * torch.eye(n, dtype=torch.float64)


@pytest.mark.parametrize("n", [3, 8, 20])
def test_cg_solves_spd_system_in_n_iterations(n):
    generator = torch.Generator().manual_seed(n)
    matrix = _random_spd(n, generator)
    rhs = torch.randn(n, generator=generator, dtype=torch.float64)
    result = conjugate_gradient(lambda v: [matrix @ v[0]], [rhs], num_iter=n)
    expected = torch.linalg.solve(matrix, rhs)
    assert result.iterations <= n
    true_residual = torch.linalg.norm(rhs - matrix @ result.solution[0])
    assert true_residual <= 1e-8 * torch.linalg.norm(rhs)
    assert torch.allclose(result.solution[0], expected, atol=1e-8)


def test_cg_stops_early_at_tolerance_and_reports_decreasing_residuals():
    generator = torch.Generator().manual_seed(1)
    n = 30
    # Well-conditioned: the residual falls fast, far below n iterations for tolerance 1e-6.
    matrix = torch.eye(n, dtype=torch.float64) + 0.01 * _random_spd(n, generator) / n
    rhs = torch.randn(n, generator=generator, dtype=torch.float64)
    result = conjugate_gradient(lambda v: [matrix @ v[0]], [rhs], num_iter=n, tolerance=1e-6)
    assert result.iterations < n // 2
    assert result.residual_norms[-1] <= 1e-6 * float(torch.linalg.norm(rhs))
    assert len(result.residual_norms) == result.iterations + 1


def test_cg_on_a_parameter_list_treats_the_tensors_as_one_vector():
    generator = torch.Generator().manual_seed(2)
    matrix = _random_spd(6, generator)
    rhs = torch.randn(6, generator=generator, dtype=torch.float64)

    def apply_split(parts):
        product = matrix @ torch.cat([parts[0].reshape(-1), parts[1].reshape(-1)])
        return [product[:4].reshape(2, 2), product[4:]]

    result = conjugate_gradient(apply_split, [rhs[:4].reshape(2, 2), rhs[4:]], num_iter=6)
    joined = torch.cat([result.solution[0].reshape(-1), result.solution[1]])
    assert torch.allclose(joined, torch.linalg.solve(matrix, rhs), atol=1e-8)


def test_diagonal_preconditioner_solves_badly_scaled_diagonal_system_in_one_step():
    diagonal = torch.tensor([1e-3, 1.0, 1e3, 5.0], dtype=torch.float64)
    rhs = torch.tensor([1.0, -2.0, 3.0, 4.0], dtype=torch.float64)
    plain = conjugate_gradient(lambda v: [diagonal * v[0]], [rhs], num_iter=1)
    preconditioned = conjugate_gradient(lambda v: [diagonal * v[0]], [rhs], num_iter=1,
                                        preconditioner=[1.0 / diagonal])
    assert torch.allclose(preconditioned.solution[0], rhs / diagonal)
    assert not torch.allclose(plain.solution[0], rhs / diagonal)


def test_cg_warm_start_keeps_an_exact_initial_solution():
    matrix = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    rhs = torch.tensor([1.0, 2.0], dtype=torch.float64)
    exact = torch.linalg.solve(matrix, rhs)
    result = conjugate_gradient(lambda v: [matrix @ v[0]], [rhs], num_iter=5, initial=[exact],
                                tolerance=1e-12)
    assert result.iterations == 0
    assert torch.allclose(result.solution[0], exact)


def test_cg_rejects_mismatched_lists():
    with pytest.raises(ValueError, match="differs in shape"):
        inner_product([torch.zeros(2)], [torch.zeros(3)])
    with pytest.raises(ValueError, match="num_iter"):
        conjugate_gradient(lambda v: v, [torch.zeros(2)], num_iter=-1)


def test_gauss_newton_fits_an_exponential_to_its_least_squares_minimum():
    t = torch.linspace(0.0, 2.0, 25, dtype=torch.float64)
    noise = 0.01 * torch.sin(7.0 * t)
    observed = 2.0 * torch.exp(-1.3 * t) + noise

    def residual(params):
        amplitude, rate = params
        return amplitude * torch.exp(rate * t) - observed

    result = gauss_newton(residual, [torch.tensor(1.0, dtype=torch.float64),
                                     torch.tensor(-0.5, dtype=torch.float64)],
                          num_gn_iter=10, num_cg_iter=2)
    amplitude, rate = result.params
    assert abs(float(amplitude) - 2.0) < 0.02 and abs(float(rate) + 1.3) < 0.02
    # First-order optimality: the gradient J^T r vanishes at the minimum.
    point = [p.clone().requires_grad_(True) for p in result.params]
    loss = (residual(point) ** 2).sum()
    gradient = torch.autograd.grad(loss, point)
    assert max(abs(float(g)) for g in gradient) < 1e-9
    assert result.losses[-1] < result.losses[0]


def test_gauss_newton_one_step_solves_regularised_linear_least_squares():
    generator = torch.Generator().manual_seed(3)
    design = torch.randn(12, 5, generator=generator, dtype=torch.float64)
    target = torch.randn(12, generator=generator, dtype=torch.float64)
    regularisation = 0.1

    def residual(params):
        return concat_residuals([design @ params[0] - target, regularisation ** 0.5 * params[0]])

    result = gauss_newton(residual, [torch.zeros(5, dtype=torch.float64)], num_gn_iter=1,
                          num_cg_iter=5)
    normal = design.T @ design + regularisation * torch.eye(5, dtype=torch.float64)
    assert torch.allclose(result.params[0], torch.linalg.solve(normal, design.T @ target),
                          atol=1e-9)


def test_polak_ribiere_directions_follow_the_authors_formula():
    # Three iterations by hand: beta = (<r', r'> - <r, r'>) / <r, r>, clamped at 0. In exact
    # arithmetic on a symmetric matrix <r, r'> = 0 and the rule equals Fletcher-Reeves; a
    # non-symmetric product breaks that orthogonality from the second step on, so the rules part.
    matrix = torch.tensor([[4.0, 1.0, 0.0, 0.3], [0.5, 3.0, 1.0, 0.0], [0.0, -0.5, 2.0, 0.4],
                           [0.2, 0.0, -0.3, 5.0]], dtype=torch.float64)
    rhs = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=torch.float64)

    def by_hand(polak_ribiere: bool) -> torch.Tensor:
        x, r = torch.zeros(4, dtype=torch.float64), rhs.clone()
        p = r.clone()
        for _ in range(3):
            q = matrix @ p
            alpha = (r @ r) / (p @ q)
            x = x + alpha * p
            r_new = r - alpha * q
            numerator = r_new @ r_new - (r @ r_new if polak_ribiere else 0.0)
            p = r_new + torch.clamp(numerator / (r @ r), min=0.0) * p
            r = r_new
        return x

    for rule, polak in (("polak_ribiere", True), ("fletcher_reeves", False)):
        result = conjugate_gradient(lambda v: [matrix @ v[0]], [rhs], num_iter=3, beta_rule=rule)
        torch.testing.assert_close(result.solution[0], by_hand(polak))
    assert not torch.allclose(by_hand(True), by_hand(False))
    with pytest.raises(ValueError, match="beta_rule"):
        conjugate_gradient(lambda v: v, [rhs], num_iter=1, beta_rule="hestenes")
