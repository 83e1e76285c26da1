"""DROL discriminative learning: fusing the online score with the Siamese score (eq. 5).

"The online classification score from the filter module is resized using cubic interpolation to
the same spatial size as the siamese classification score and then fused with it through
weighted sum" (section 3.3). The authors' code does this in two steps, reproduced here:
1. the H x H filter output is interpolated in the Fourier domain (trigonometric interpolation of
   the map as one period, the classifier's `sample_fs`) to an instance-size map, one value per
   crop pixel, rolled so that the crop centre is its centre pixel (`fourier_upsample`);
2. that map is resized as a whole image onto the Siamese map's grid: for DROL-RPN by PIL's
   bicubic resize (`antialiased_bicubic_resize`, 287 -> 21 for AlexNet), for DROL-FC by OpenCV's
   bicubic resize onto the x16-upsampled response (255 -> 272, SiamFC's `cubic_resize`).
Both steps treat the feature map as spanning the whole crop (instance size / H crop pixels per
cell), while its cells are really the backbone stride apart, and the Siamese map spans less than
the crop: the online peaks land nearer the centre than the target is (about 0.8 x its offset).
The authors' labels use the same geometry, so the geometry is kept as theirs.

Before the weighted sum each map is brought to the scale the authors' code uses: for DROL-FC both
the Siamese response and the online map are shifted to a zero minimum and divided by their sum
(`sum_normalise`, SiamFC's own response normalisation); for DROL-RPN the online map is min-max
normalised to [0, 1] and mixed with the already penalised Siamese probability.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=16)
def _fourier_interpolation_matrix(size: int, out_size: int,
                                  kernel_size: int) -> np.ndarray:
    """The (out_size x size) matrix of the authors' Fourier upsampling along one axis.

    Their `localize_target`: the centred DFT of the map divided by its size, every frequency k
    in [-(size // 2), size // 2] (an even size's Nyquist term at both ends, as their `cfft2`
    keeps it), shifted by their half-period phase (a factor (-1)^k for an even kernel),
    evaluated at out_size points of one period and rolled by (out_size + 1) // 2. Output pixel m
    then reads the map at the continuous cell (m + roll) * size / out_size - size / 2 (modulo
    size): the centre pixel (out_size - 1) / 2 of an odd out_size lands on cell size / 2, where
    the centred label peaks.
    """
    half = size // 2
    frequencies = np.arange(-half, half + 1, dtype=np.float64)
    # Their shift pi * (1 - (kernel % 2) / size), for the even (4 x 4) kernel: pi.
    shift = math.pi * (1.0 - (kernel_size % 2) / size)
    roll = (out_size + 1) // 2
    positions = (np.arange(out_size, dtype=np.float64) + roll) % out_size / out_size
    cells = np.arange(size, dtype=np.float64) / size
    phase = (2.0 * math.pi * frequencies[None, None, :]
             * (positions[:, None, None] - cells[None, :, None]) + shift * frequencies)
    return np.cos(phase).sum(-1) / size


def fourier_upsample(scores: torch.Tensor, out_size: int, kernel_size: int = 4) -> torch.Tensor:
    """B x H x H filter outputs -> B x out_size x out_size maps, one value per crop pixel with the
    crop centre at the centre pixel (`_fourier_interpolation_matrix` along both axes)."""
    if scores.dim() != 3 or scores.shape[-1] != scores.shape[-2]:
        raise ValueError(f"scores must be B x H x H, got {tuple(scores.shape)}")
    if out_size < scores.shape[-1]:
        raise ValueError(f"out_size {out_size} must be at least the map size {scores.shape[-1]}")
    matrix = _fourier_interpolation_matrix(scores.shape[-1], out_size, kernel_size)
    matrix = torch.from_numpy(matrix).to(device=scores.device, dtype=scores.dtype)
    return matrix @ scores @ matrix.t()


def _pil_bicubic(x: np.ndarray) -> np.ndarray:
    """PIL's bicubic kernel (a = -0.5)."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@functools.lru_cache(maxsize=16)
def _antialiased_bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size x in_size) weights of PIL's `Image.resize(..., BICUBIC)` along one axis: the
    whole input span onto the whole output span, the kernel widened by the downscale factor
    (antialiasing) and each row normalised to sum 1, as PIL's `precompute_coeffs` does."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 2.0 * filter_scale
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    for out_index in range(out_size):
        centre = (out_index + 0.5) * scale
        low = max(int(centre - support + 0.5), 0)
        high = min(int(centre + support + 0.5), in_size)
        taps = np.arange(low, high, dtype=np.float64)
        weights = _pil_bicubic((taps - centre + 0.5) / filter_scale)
        total = weights.sum()
        matrix[out_index, low:high] = weights / total if total != 0.0 else weights
    return matrix


def antialiased_bicubic_resize(maps: torch.Tensor, size: int) -> torch.Tensor:
    """B x M x M maps resized to B x size x size as PIL resizes a float image with BICUBIC
    (the authors' DROL-RPN resize of the online map onto the anchors' grid)."""
    if maps.dim() != 3 or maps.shape[-1] != maps.shape[-2]:
        raise ValueError(f"maps must be B x M x M, got {tuple(maps.shape)}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    matrix = torch.from_numpy(_antialiased_bicubic_matrix(maps.shape[-1], size)).to(
        device=maps.device, dtype=torch.float64)
    return (matrix @ maps.double() @ matrix.t()).to(maps.dtype)


def sample_at_offsets(online: torch.Tensor, online_stride: float,
                      offsets_px: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of one M x M `online` map at N crop-pixel offsets (dx, dy) from the crop
    centre (N x 2); positions past the edge take the border value. Returns (N,)."""
    if online.dim() != 2 or online.shape[0] != online.shape[1]:
        raise ValueError(f"online map must be M x M, got {tuple(online.shape)}")
    half_span = max((online.shape[-1] - 1) / 2.0, 0.5) * online_stride
    grid = (offsets_px.to(online.dtype) / half_span).reshape(1, 1, -1, 2)
    sampled = F.grid_sample(online[None, None], grid, mode="bilinear", padding_mode="border",
                            align_corners=True)
    return sampled.reshape(-1)


def sum_normalise(scores: torch.Tensor) -> torch.Tensor:
    """Shift to a zero minimum and divide by the sum (SiamFC's response normalisation)."""
    shifted = scores - scores.min()
    return shifted / (shifted.sum() + 1e-16)


def min_max_normalise(scores: torch.Tensor) -> torch.Tensor:
    """Scale to [0, 1] over the whole tensor (all scales together, so their ranking is kept)."""
    low, high = scores.min(), scores.max()
    return (scores - low) / torch.clamp(high - low, min=1e-12)


def fuse_scores(siamese: torch.Tensor, online_normalised: torch.Tensor,
                weight: float) -> torch.Tensor:
    """Eq. (5): lambda * f_C + (1 - lambda) * f_M^cls, online maps broadcast over anchors."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fusion weight lambda must be in [0, 1], got {weight}")
    return weight * online_normalised + (1.0 - weight) * siamese
