"""Regularised linear regression solved in the Fourier domain (DSiam, Guo et al., ICCV 2017).

DSiam learns two online transforms by regressing one feature map onto another with a circular
convolution kernel T:

    R = argmin_T || T * X - Y ||^2 + lambda || T ||^2                      eq. (3)
    R = F^-1( conj(F(X)) . F(Y) / (conj(F(X)) . F(X) + lambda) )           eq. (4)

and applies the result by circular convolution, which keeps the size of its input (eq. 2).
Every channel is an independent regression (the division in eq. 4 is element-wise), so all
functions here work on tensors of shape ``(..., H, W)`` and treat every leading index as its own
problem. Everything stays in torch (``torch.fft``) on the caller's device and is differentiable,
including with respect to ``lambda``, so the transforms can be trained end to end (section 3.5).

Real inputs give Hermitian spectra, so the half spectra of ``rfft2`` are enough; a transform is
kept as its half spectrum (``TransformSpectrum``) because applying it needs the spectrum anyway.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import torch

Regulariser = Union[float, torch.Tensor]


@dataclass(frozen=True)
class RegressionStatistics:
    """The two spectra eq. (4) is built from, kept apart so that they can be blended over time.

    ``cross`` is conj(F(X)) . F(Y) and ``energy`` is conj(F(X)) . F(X) (real), both half spectra of
    shape ``(..., H, W // 2 + 1)``; ``size`` is the spatial size ``(H, W)`` of the feature maps.
    """

    cross: torch.Tensor
    energy: torch.Tensor
    size: tuple[int, int]

    def blend(self, newer: "RegressionStatistics", rate: float) -> "RegressionStatistics":
        """Running average ``(1 - rate) * self + rate * newer`` of both spectra."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"blending rate must lie in [0, 1], got {rate}")
        if newer.size != self.size or newer.cross.shape != self.cross.shape:
            raise ValueError(
                f"cannot blend regression statistics of shape {tuple(newer.cross.shape)} "
                f"into statistics of shape {tuple(self.cross.shape)}")
        return RegressionStatistics(
            cross=torch.lerp(self.cross, newer.cross, rate),
            energy=torch.lerp(self.energy, newer.energy, rate),
            size=self.size,
        )


def _check_feature_pair(source: torch.Tensor, target: torch.Tensor) -> None:
    if source.dim() < 2:
        raise ValueError(f"feature maps need at least 2 dimensions (..., H, W), got shape "
                         f"{tuple(source.shape)}")
    if source.shape != target.shape:
        raise ValueError(f"regression source and target must have the same shape, got "
                         f"{tuple(source.shape)} and {tuple(target.shape)}")
    if source.is_complex() or target.is_complex():
        raise TypeError("regression source and target must be real feature maps")


def _check_regulariser(regulariser: Regulariser) -> None:
    value = regulariser.detach() if torch.is_tensor(regulariser) else torch.tensor(regulariser)
    if not bool(torch.all(value > 0)):
        raise ValueError(f"the regulariser lambda must be positive, got {regulariser}")


def regression_statistics(source: torch.Tensor, target: torch.Tensor) -> RegressionStatistics:
    """Spectra of eq. (4) for regressing ``source`` (X) onto ``target`` (Y), channel by channel."""
    _check_feature_pair(source, target)
    size = (int(source.shape[-2]), int(source.shape[-1]))
    source_spectrum = torch.fft.rfft2(source)
    target_spectrum = torch.fft.rfft2(target)
    return RegressionStatistics(
        cross=source_spectrum.conj() * target_spectrum,
        energy=(source_spectrum.conj() * source_spectrum).real,
        size=size,
    )


@dataclass(frozen=True)
class TransformSpectrum:
    """A learned transform R kept as its half spectrum F(R) of shape ``(..., H, W // 2 + 1)``."""

    spectrum: torch.Tensor
    size: tuple[int, int]

    def spatial(self) -> torch.Tensor:
        """The transform R itself, real, of shape ``(..., H, W)`` (the inverse DFT in eq. 4)."""
        return torch.fft.irfft2(self.spectrum, s=self.size)

    def apply(self, features: torch.Tensor) -> torch.Tensor:
        """``R * features``: circular convolution in the Fourier domain (eq. 2), same size out.

        ``features`` must have spatial size ``self.size``; leading dimensions broadcast against the
        transform's, so one transform can serve a batch of search regions (e.g. several scales).
        """
        if tuple(features.shape[-2:]) != self.size:
            raise ValueError(f"transform of spatial size {self.size} cannot be applied to "
                             f"features of spatial size {tuple(features.shape[-2:])}")
        return torch.fft.irfft2(self.spectrum * torch.fft.rfft2(features), s=self.size)


def transform_from_statistics(statistics: RegressionStatistics,
                              regulariser: Regulariser) -> TransformSpectrum:
    """Closed-form solution of eq. (3): the element-wise quotient of eq. (4)."""
    _check_regulariser(regulariser)
    return TransformSpectrum(
        spectrum=statistics.cross / (statistics.energy + regulariser),
        size=statistics.size,
    )


def solve_transform(source: torch.Tensor, target: torch.Tensor,
                    regulariser: Regulariser) -> TransformSpectrum:
    """Transform T minimising ||T * source - target||^2 + lambda ||T||^2 per channel (eqs. 3-4).

    ``source`` and ``target`` are real tensors of identical shape ``(..., H, W)``; ``regulariser``
    is lambda > 0, a float or a tensor broadcastable against the half spectrum (a learnable scalar
    in DSiam).
    """
    return transform_from_statistics(regression_statistics(source, target), regulariser)


def gaussian_weight_map(height: int, width: int, sigma_y: float, sigma_x: float,
                        device: torch.device | None = None,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Centred Gaussian weight map of shape ``(height, width)``, 1 at the centre.

    DSiam multiplies the region G around the target by such a map to obtain the foreground-
    highlighted region G-bar that the background-suppression transform W regresses onto (eq. 7).
    The centre uses the 0-based pixel-centre convention ``(size - 1) / 2``.
    """
    if height < 1 or width < 1:
        raise ValueError(f"weight map size must be positive, got {height}x{width}")
    if sigma_y <= 0 or sigma_x <= 0:
        raise ValueError(f"Gaussian widths must be positive, got sigma_y={sigma_y}, "
                         f"sigma_x={sigma_x}")
    ys = torch.arange(height, device=device, dtype=dtype) - (height - 1) / 2.0
    xs = torch.arange(width, device=device, dtype=dtype) - (width - 1) / 2.0
    return torch.exp(-0.5 * ((ys[:, None] / sigma_y) ** 2 + (xs[None, :] / sigma_x) ** 2))
