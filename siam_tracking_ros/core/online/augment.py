"""First-frame augmentation for the online classifier (DROL section 4.1, "Training phase").

DROL augments the first frame "of translation, rotation, and blurring, yielding total 30 initial
training samples", following ATOM. The list of transforms is the reference one: identity,
horizontal flip, rotations by +-5, 10, 20, 30, 45, 60 degrees, five anisotropic blurs, four
relative shifts of +-0.6 (half a sample size per unit) and seven feature-dropout copies of the
identity sample (23 images + 7 dropout samples = 30).

The transforms work on a patch cropped with the crop expansion factor (2: twice the sample size,
same centre), so that rotations and shifts find real image content instead of padding; every
output is the centre `output_size` window of the transformed patch. Dropout acts on features and
is therefore applied by the classifier (`feature_dropout`), not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch


@dataclass(frozen=True)
class AugmentationConfig:
    flip: bool = True
    rotations_deg: tuple[float, ...] = (5, -5, 10, -10, 20, -20, 30, -30, 45, -45, 60, -60)
    # (sigma_y, sigma_x) pairs in pixels of the sample.
    blur_sigmas: tuple[tuple[float, float], ...] = ((2, 0.2), (0.2, 2), (3, 1), (1, 3), (2, 2))
    # Shifts in units of half the sample size, as in the ATOM-style base.
    relative_shifts: tuple[tuple[float, float], ...] = ((0.6, 0.6), (-0.6, 0.6), (0.6, -0.6),
                                                         (-0.6, -0.6))
    dropout_samples: int = 7
    dropout_probability: float = 0.2
    expansion_factor: float = 2.0

    def __post_init__(self):
        if self.expansion_factor < 1.0:
            raise ValueError(f"expansion_factor must be >= 1, got {self.expansion_factor}")
        if not 0.0 <= self.dropout_probability < 1.0:
            raise ValueError("dropout_probability must be in [0, 1), got "
                             f"{self.dropout_probability}")
        if self.dropout_samples < 0:
            raise ValueError(f"dropout_samples must be >= 0, got {self.dropout_samples}")
        for sigma_pair in self.blur_sigmas:
            if len(sigma_pair) != 2 or min(sigma_pair) <= 0:
                raise ValueError("blur sigmas must be positive (sigma_y, sigma_x) pairs, got "
                                 f"{sigma_pair}")

    @property
    def num_image_samples(self) -> int:
        return (1 + int(self.flip) + len(self.rotations_deg) + len(self.blur_sigmas)
                + len(self.relative_shifts))

    @property
    def num_samples(self) -> int:
        return self.num_image_samples + self.dropout_samples


@dataclass(frozen=True)
class AugmentedImages:
    images: np.ndarray          # N x S x S x 3, dtype and colour order of the input patch
    target_offsets: np.ndarray  # N x 2 (dx, dy): target centre minus sample centre, in pixels


def expanded_patch_size(output_size: int, config: AugmentationConfig) -> int:
    """Side of the patch to crop (around the target, at the sample's scale) before augmenting."""
    return int(math.ceil(output_size * config.expansion_factor))


def _centre_window(patch: np.ndarray, output_size: int, shift_xy=(0.0, 0.0)) -> np.ndarray:
    """The output_size window centred at patch centre - shift, so content moves by +shift."""
    side = patch.shape[0]
    centre = (side - 1) / 2.0
    # Bilinear resampling of a translated window keeps sub-pixel shifts exact.
    left = centre - shift_xy[0] - (output_size - 1) / 2.0
    top = centre - shift_xy[1] - (output_size - 1) / 2.0
    matrix = np.array([[1.0, 0.0, left], [0.0, 1.0, top]], dtype=np.float64)
    return cv2.warpAffine(patch, matrix, (output_size, output_size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _rotate(patch: np.ndarray, angle_deg: float) -> np.ndarray:
    side = patch.shape[0]
    centre = ((side - 1) / 2.0, (side - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, angle_deg, 1.0)
    return cv2.warpAffine(patch, matrix, (side, side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def _blur(patch: np.ndarray, sigma_yx: tuple[float, float]) -> np.ndarray:
    sigma_y, sigma_x = sigma_yx
    # Kernel half-width ceil(2 sigma), as the ATOM-style base uses.
    kernel = (2 * math.ceil(2 * sigma_x) + 1, 2 * math.ceil(2 * sigma_y) + 1)
    return cv2.GaussianBlur(patch, kernel, sigmaX=sigma_x, sigmaY=sigma_y,
                            borderType=cv2.BORDER_REPLICATE)


def augment_first_frame(patch: np.ndarray, output_size: int,
                        config: AugmentationConfig = AugmentationConfig()) -> AugmentedImages:
    """The image part of the first-frame augmentation, identity sample first.

    `patch` is a square H x W x 3 (uint8 or float32) crop centred on the target whose side is
    `expanded_patch_size(output_size, config)`.
    """
    expected = expanded_patch_size(output_size, config)
    if patch.ndim != 3 or patch.shape[2] != 3 or patch.dtype not in (np.uint8, np.float32):
        raise ValueError(f"patch must be an H x W x 3 uint8 or float32 array, "
                         f"got {patch.dtype} {patch.shape}")
    if patch.shape[0] != expected or patch.shape[1] != expected:
        raise ValueError(f"patch must be {expected} x {expected} for output size {output_size} and "
                         f"expansion factor {config.expansion_factor}, got {patch.shape[:2]}")
    images = [_centre_window(patch, output_size)]
    offsets = [(0.0, 0.0)]
    if config.flip:
        # The target sits at the centre, so mirroring leaves its position where it was.
        images.append(_centre_window(np.ascontiguousarray(patch[:, ::-1]), output_size))
        offsets.append((0.0, 0.0))
    for angle in config.rotations_deg:
        images.append(_centre_window(_rotate(patch, angle), output_size))
        offsets.append((0.0, 0.0))
    for sigma_pair in config.blur_sigmas:
        images.append(_centre_window(_blur(patch, sigma_pair), output_size))
        offsets.append((0.0, 0.0))
    for relative in config.relative_shifts:
        shift = (relative[0] * output_size / 2.0, relative[1] * output_size / 2.0)
        images.append(_centre_window(patch, output_size, shift))
        offsets.append(shift)
    return AugmentedImages(images=np.stack(images), target_offsets=np.asarray(offsets))


def feature_dropout(features: torch.Tensor, num_copies: int, probability: float,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """`num_copies` copies of a 1 x C x H x W feature map with whole channels dropped.

    Channel dropout with the usual 1 / (1 - p) rescaling, as the ATOM-style base does; a seeded
    CPU generator makes the first-frame model reproducible.
    """
    if features.dim() != 4 or features.shape[0] != 1:
        raise ValueError(f"features must be 1 x C x H x W, got {tuple(features.shape)}")
    channels = features.shape[1]
    # Drawn on the CPU (with a CPU generator) so CPU and CUDA runs drop the same channels.
    keep = torch.rand(num_copies, channels, 1, 1, generator=generator)
    mask = (keep >= probability).to(device=features.device, dtype=features.dtype)
    mask = mask / (1.0 - probability)
    return features * mask
