"""Conjugate gradient and Gauss-Newton for the online classifier.

The online classifier minimises an L2 objective written as the squared norm of a residual
vector, L(w) = ||r(w)||^2 with r_j(w) = sqrt(gamma_j) (f(x_j; w) - y_j) and
r_{m+k}(w) = sqrt(lambda_k) w_k (DROL section 3.3). Gauss-Newton linearises r around the current
w and solves the normal equations J^T J dw = -J^T r with conjugate gradient, as the ATOM-style
optimiser DROL builds on does. J^T J products come from autograd: J^T u is a vector-Jacobian
product, and because J^T u is linear in u, differentiating <J^T u, p> with respect to u gives the
Jacobian-vector product J p without forming J.

Parameters and search directions are lists of tensors ("parameter lists"); every inner product
runs over all tensors of a list, so one solve covers several parameter tensors at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

ParamList = list[torch.Tensor]
BETA_RULES = ("fletcher_reeves", "polak_ribiere")
MatrixProduct = Callable[[ParamList], ParamList]
ResidualFunction = Callable[[ParamList], torch.Tensor]


def inner_product(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """<a, b> summed over every tensor of two parameter lists of matching shapes."""
    _check_same_layout(a, b)
    return sum((x * y).sum() for x, y in zip(a, b))


def _check_same_layout(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> None:
    if len(a) != len(b):
        raise ValueError(f"parameter lists differ in length: {len(a)} vs {len(b)}")
    for index, (x, y) in enumerate(zip(a, b)):
        if x.shape != y.shape:
            raise ValueError(
                f"parameter list entry {index} differs in shape: {tuple(x.shape)} vs "
                f"{tuple(y.shape)}")


def _add_scaled(a: Sequence[torch.Tensor], scale: torch.Tensor | float,
                b: Sequence[torch.Tensor]) -> ParamList:
    """a + scale * b, entry by entry."""
    return [x + scale * y for x, y in zip(a, b)]


def _apply_diagonal(diagonal: Sequence[torch.Tensor] | None,
                    vector: Sequence[torch.Tensor]) -> ParamList:
    """Diagonal preconditioner M^-1 applied element-wise; the identity when absent."""
    if diagonal is None:
        return list(vector)
    return [d * v for d, v in zip(diagonal, vector)]


@dataclass(frozen=True)
class ConjugateGradientResult:
    solution: ParamList
    residual_norms: tuple[float, ...]   # ||b - A x_k|| for k = 0 .. iterations
    iterations: int


def conjugate_gradient(apply_matrix: MatrixProduct, rhs: Sequence[torch.Tensor], *,
                       num_iter: int, initial: Sequence[torch.Tensor] | None = None,
                       preconditioner: Sequence[torch.Tensor] | None = None,
                       tolerance: float = 0.0,
                       beta_rule: str = "fletcher_reeves") -> ConjugateGradientResult:
    """Solve A x = b for a symmetric positive definite A given only as the product x -> A x.

    `preconditioner` is an element-wise (diagonal) approximation of A^-1. The iteration stops after
    `num_iter` steps, when ||r|| <= tolerance * ||b||, or when the search direction has no positive
    curvature left (A not positive definite along it, or the residual is exactly zero).
    `beta_rule` picks the direction update: "fletcher_reeves" (<r', z'> / <r, z>) or
    "polak_ribiere" ((<r', z'> - <r, z'>) / <r, z>); either beta is clamped at 0, as the
    ATOM-style optimiser DROL uses does.
    """
    if beta_rule not in BETA_RULES:
        raise ValueError(f"beta_rule must be one of {BETA_RULES}, got {beta_rule!r}")
    if num_iter < 0:
        raise ValueError(f"num_iter must be >= 0, got {num_iter}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    rhs = list(rhs)
    if preconditioner is not None:
        _check_same_layout(preconditioner, rhs)
    if initial is None:
        solution = [torch.zeros_like(b) for b in rhs]
        residual = [b.clone() for b in rhs]
    else:
        _check_same_layout(initial, rhs)
        solution = [x.detach().clone() for x in initial]
        residual = _add_scaled(rhs, -1.0, [t.detach() for t in apply_matrix(solution)])
    rhs_norm = float(inner_product(rhs, rhs).sqrt())
    norms = [float(inner_product(residual, residual).sqrt())]
    direction = _apply_diagonal(preconditioner, residual)
    residual_dot_z = inner_product(residual, direction)
    iterations = 0
    for _ in range(num_iter):
        if norms[-1] <= tolerance * rhs_norm:
            break
        matrix_times_direction = [t.detach() for t in apply_matrix(direction)]
        with torch.no_grad():
            curvature = inner_product(direction, matrix_times_direction)
            if not torch.isfinite(curvature) or curvature <= 0:
                break
            step = residual_dot_z / curvature
            solution = _add_scaled(solution, step, direction)
            previous_residual = residual
            residual = _add_scaled(residual, -step, matrix_times_direction)
            norms.append(float(inner_product(residual, residual).sqrt()))
            iterations += 1
            z = _apply_diagonal(preconditioner, residual)
            new_residual_dot_z = inner_product(residual, z)
            numerator = new_residual_dot_z
            if beta_rule == "polak_ribiere":
                numerator = numerator - inner_product(previous_residual, z)
            beta = torch.clamp(numerator / residual_dot_z, min=0.0)
            direction = _add_scaled(z, beta, direction)
            residual_dot_z = new_residual_dot_z
    return ConjugateGradientResult(solution=solution, residual_norms=tuple(norms),
                                   iterations=iterations)


@dataclass(frozen=True)
class GaussNewtonResult:
    params: ParamList
    losses: tuple[float, ...]   # ||r||^2 before each Gauss-Newton step and after the last one


def _gradients(outputs: torch.Tensor, inputs: Sequence[torch.Tensor], grad_outputs: torch.Tensor,
               create_graph: bool = False) -> ParamList:
    """Vector-Jacobian product; inputs the outputs do not depend on get zeros."""
    grads = torch.autograd.grad(outputs, list(inputs), grad_outputs, retain_graph=True,
                                create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]


class LinearisedResidual:
    """r(w) linearised at w0: provides J^T r(w0) and the product p -> J^T J p by autograd."""

    def __init__(self, residual_fn: ResidualFunction, params: Sequence[torch.Tensor]):
        self.params = [p.detach().clone().requires_grad_(True) for p in params]
        self.residual = residual_fn(self.params)
        if self.residual.dim() != 1:
            raise ValueError(
                "the residual function must return a 1-D tensor, got shape "
                f"{tuple(self.residual.shape)}")
        # J^T u with u a free variable: linear in u, so d<J^T u, p>/du = J p.
        self._dual = torch.zeros_like(self.residual, requires_grad=True)
        self._jt_dual = _gradients(self.residual, self.params, self._dual, create_graph=True)

    def loss(self) -> float:
        return float((self.residual.detach() ** 2).sum())

    def jacobian_t_residual(self) -> ParamList:
        return _gradients(self.residual, self.params, self.residual.detach())

    def jacobian_times(self, vector: Sequence[torch.Tensor]) -> torch.Tensor:
        jvp = torch.autograd.grad(self._jt_dual, self._dual, list(vector), retain_graph=True,
                                  allow_unused=True)[0]
        return torch.zeros_like(self.residual) if jvp is None else jvp

    def normal_matrix_times(self, vector: Sequence[torch.Tensor]) -> ParamList:
        return _gradients(self.residual, self.params, self.jacobian_times(vector).detach())


def gauss_newton(residual_fn: ResidualFunction, params: Sequence[torch.Tensor], *,
                 num_gn_iter: int, num_cg_iter: int,
                 preconditioner: Sequence[torch.Tensor] | None = None,
                 beta_rule: str = "fletcher_reeves") -> GaussNewtonResult:
    """Minimise ||residual_fn(w)||^2 from `params` by Gauss-Newton with a CG inner solver.

    Each step solves J^T J dw = -J^T r approximately with `num_cg_iter` CG iterations started from
    dw = 0 and sets w <- w + dw (`beta_rule` as in `conjugate_gradient`). For a residual linear
    in w one step with enough CG iterations reaches the exact minimiser.
    """
    if num_gn_iter < 0:
        raise ValueError(f"num_gn_iter must be >= 0, got {num_gn_iter}")
    current = [p.detach() for p in params]
    losses = []
    for _ in range(num_gn_iter):
        linearised = LinearisedResidual(residual_fn, current)
        losses.append(linearised.loss())
        steepest = [-g for g in linearised.jacobian_t_residual()]
        step = conjugate_gradient(linearised.normal_matrix_times, steepest, num_iter=num_cg_iter,
                                  preconditioner=preconditioner, beta_rule=beta_rule).solution
        current = [(p + d).detach() for p, d in zip(current, step)]
    with torch.no_grad():
        losses.append(float((residual_fn(current) ** 2).sum()))
    return GaussNewtonResult(params=current, losses=tuple(losses))


def concat_residuals(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """Flatten and join residual blocks (data terms, regularisation terms) into one vector."""
    return torch.cat([part.reshape(-1) for part in parts])
