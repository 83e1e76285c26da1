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

``solve_transform`` is eq. (4) as printed. ``TransformLayer`` is the layer the authors' code
builds from it (their RLR + CirConv layers), which differs from the printed equations in three
ways that this module follows:

- a Hann window multiplies the features before every FFT, when learning and when applying;
- the energy term is divided by the number of cells H * W, i.e. lambda is scaled by H * W;
- the layer's output mixes its input with the transformed features,
  ``(1 - rate) * f + rate * T * (hann . f)``.

Real inputs give Hermitian spectra, so the half spectra of ``rfft2`` are enough; a transform is
kept as its half spectrum (``TransformSpectrum``) because applying it needs the spectrum anyway.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Union

import torch

Regulariser = Union[float, torch.Tensor]


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


def solve_transform(source: torch.Tensor, target: torch.Tensor,
                    regulariser: Regulariser) -> TransformSpectrum:
    """Transform T minimising ||T * source - target||^2 + lambda ||T||^2 per channel (eqs. 3-4).

    ``source`` and ``target`` are real tensors of identical shape ``(..., H, W)``; ``regulariser``
    is lambda > 0, a float or a tensor broadcastable against the half spectrum (a learnable scalar
    in DSiam).
    """
    _check_feature_pair(source, target)
    _check_regulariser(regulariser)
    source_spectrum = torch.fft.rfft2(source)
    energy = (source_spectrum.conj() * source_spectrum).real
    return TransformSpectrum(
        spectrum=source_spectrum.conj() * torch.fft.rfft2(target) / (energy + regulariser),
        size=(int(source.shape[-2]), int(source.shape[-1])))


@functools.lru_cache(maxsize=32)
def feature_window(height: int, width: int, device: torch.device = torch.device("cpu"),
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(height, width)`` outer product of symmetric Hann windows (MATLAB's ``hann``, zero at
    both ends), laid on feature maps before every FFT of a ``TransformLayer``. Cached: read-only.
    """
    if height < 1 or width < 1:
        raise ValueError(f"window size must be positive, got {height}x{width}")
    # A normal tensor even when first asked for under inference mode: training reuses the cache.
    with torch.inference_mode(False):
        rows = torch.hann_window(height, periodic=False, dtype=torch.float64)
        cols = torch.hann_window(width, periodic=False, dtype=torch.float64)
        return torch.outer(rows, cols).to(device, dtype)


def at_least_float32(features: torch.Tensor) -> torch.Tensor:
    """Reduced-precision features (bf16, fp16) in float32; float32 / float64 as they are."""
    return features if features.dtype in (torch.float32, torch.float64) else features.float()


def windowed(features: torch.Tensor) -> torch.Tensor:
    """``hann . features`` with the window of the features' spatial size."""
    height, width = int(features.shape[-2]), int(features.shape[-1])
    return features * feature_window(height, width, features.device, features.dtype)


@dataclass(frozen=True)
class TransformLayer:
    """DSiam's online transform layer as the authors' code computes it (V and W of eq. 2).

    ``transform``: T of eq. (4) solved between Hann-windowed features with lambda scaled by the
    number of cells (``learn_transform_layer``); ``rate``: the layer's mixing weight (0.49 for V,
    0.29 for W in the reference).
    """

    transform: TransformSpectrum
    rate: float

    def apply(self, features: torch.Tensor) -> torch.Tensor:
        """``(1 - rate) * f + rate * T * (hann . f)``, computed in at least float32, returned in
        the features' dtype."""
        values = at_least_float32(features)
        transformed = self.transform.apply(windowed(values))
        return torch.lerp(values, transformed, self.rate).to(features.dtype)


def learn_transform_layer(source: torch.Tensor, target: torch.Tensor, regulariser: Regulariser,
                          rate: float) -> TransformLayer:
    """The transform layer regressing ``source`` onto ``target`` (eqs. 5-8, reference form).

    Both inputs are Hann-windowed and lambda is multiplied by H * W: the reference divides the
    energy conj(F(X)) . F(X) by H * W and the cross term's application by H * W again, which is
    eq. (4) with lambda * H * W. Solved in at least float32 whatever the features' dtype.
    """
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"a transform layer's rate must lie in (0, 1], got {rate}")
    _check_feature_pair(source, target)
    cells = int(source.shape[-2]) * int(source.shape[-1])
    transform = solve_transform(windowed(at_least_float32(source)),
                                windowed(at_least_float32(target)), regulariser * cells)
    return TransformLayer(transform=transform, rate=float(rate))
