"""DROL discriminative learning: fusing the online score with the Siamese score (eq. 5).

"The online classification score from the filter module is resized using cubic interpolation to
the same spatial size as the siamese classification score and then fused with it through
weighted sum" (section 3.3). Both maps are centred on the search-crop centre but their cells
may cover different spans (the online map comes from the backbone feature map, the Siamese map
from the correlation), so the resize samples the online map, bicubically, at the crop position
of every Siamese cell; when both maps cover the same span this is a plain bicubic resize. (The
authors' code stretches the classifier's whole-crop map over the Siamese map, whose cells span
a smaller region, which displaces every online peak towards the centre; sampling at the Siamese
cells' own positions keeps both maps on one geometry.)

Before the weighted sum each map is brought to the scale the authors' code uses: for DROL-FC both
the Siamese response and the online map are shifted to a zero minimum and divided by their sum
(`sum_normalise`, SiamFC's own response normalisation); for DROL-RPN the online map is min-max
normalised to [0, 1] and mixed with the already penalised Siamese probability.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resample_to_grid(online: torch.Tensor, online_stride: float, grid_size: int,
                     grid_stride: float) -> torch.Tensor:
    """Bicubic samples of B x M x M `online` maps at the cells of a centred `grid_size` grid.

    `online_stride` and `grid_stride` are the crop-pixel distances between neighbouring cells of
    the two maps; cell i of a map of size n lies (i - (n - 1) / 2) * stride from the crop centre.
    Positions past the online map's edge take its border value.
    """
    if online.dim() != 3 or online.shape[-1] != online.shape[-2]:
        raise ValueError(f"online maps must be B x M x M, got {tuple(online.shape)}")
    if online_stride <= 0 or grid_stride <= 0 or grid_size < 1:
        raise ValueError(f"strides must be > 0 and the grid size >= 1, got online_stride="
                         f"{online_stride}, grid_stride={grid_stride}, grid_size={grid_size}")
    online_size = online.shape[-1]
    cells = torch.arange(grid_size, dtype=online.dtype, device=online.device)
    offsets_px = (cells - (grid_size - 1) / 2.0) * grid_stride
    # Normalised coordinates of align_corners=True: -1 and 1 are the centres of the edge cells.
    half_span = max((online_size - 1) / 2.0, 0.5) * online_stride
    coords = offsets_px / half_span
    grid_y, grid_x = torch.meshgrid(coords, coords, indexing="ij")
    grid = torch.stack([grid_x, grid_y], dim=-1).expand(online.shape[0], -1, -1, -1)
    sampled = F.grid_sample(online[:, None], grid, mode="bicubic", padding_mode="border",
                            align_corners=True)
    return sampled[:, 0]


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
