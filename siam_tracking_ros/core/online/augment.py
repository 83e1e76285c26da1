"""First-frame augmentation for the online classifier (DROL section 4.1, "Training phase").

DROL augments the first frame "of translation, rotation, and blurring, yielding total 30 initial
training samples", following ATOM. The list of transforms and its order are the authors': identity,
four relative shifts of +-0.6 (half a sample size per unit, truncated to whole pixels), horizontal
flip, five anisotropic blurs, rotations by 5, -5, 10, -10, 20, -20, 30, -30, 45, -45, -60, 60
degrees, and seven feature-dropout copies of the identity sample (23 images + 7 dropout samples =
30). The flip, the blurs and the rotations are each also translated by a random whole-pixel shift
of up to +-1/6 of the sample size (their RANDOM_SHIFT_FACTOR 1/3), drawn in that order from the
sequence's generator, and their labels follow the shift.

The transforms work on a patch cropped with the crop expansion factor (2: twice the sample size,
same centre), so that rotations and shifts find real image content instead of padding; every
output is a whole-pixel `output_size` window of the transformed patch, the centre one moved by the
sample's shift (the authors' `crop_to_output`: rows from ceil((P - S) / 2) - shift). Dropout acts
on features and is therefore applied by the classifier (`feature_dropout`), not here.
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
    rotations_deg: tuple[float, ...] = (5, -5, 10, -10, 20, -20, 30, -30, 45, -45, -60, 60)
    # (sigma_y, sigma_x) pairs in pixels of the sample.
    blur_sigmas: tuple[tuple[float, float], ...] = ((2, 0.2), (0.2, 2), (3, 1), (1, 3), (2, 2))
    # Shifts in units of half the sample size, as in the ATOM-style base.
    relative_shifts: tuple[tuple[float, float], ...] = ((0.6, 0.6), (-0.6, 0.6), (0.6, -0.6),
                                                         (-0.6, -0.6))
    dropout_samples: int = 7
    dropout_probability: float = 0.2
    expansion_factor: float = 2.0
    # Random shift of the flip, blur and rotation samples: up to +-factor / 2 of the sample size.
    random_shift_factor: float = 1.0 / 3.0

    def __post_init__(self):
        if self.expansion_factor < 1.0:
            raise ValueError(f"expansion_factor must be >= 1, got {self.expansion_factor}")
        if not 0.0 <= self.dropout_probability < 1.0:
            raise ValueError("dropout_probability must be in [0, 1), got "
                             f"{self.dropout_probability}")
        if self.dropout_samples < 0:
            raise ValueError(f"dropout_samples must be >= 0, got {self.dropout_samples}")
        if not 0.0 <= self.random_shift_factor < 2.0:
            raise ValueError("random_shift_factor must be in [0, 2), got "
                             f"{self.random_shift_factor}")
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
    target_offsets: np.ndarray  # N x 2 (dx, dy): the sample's shift of the target, in pixels


def expanded_patch_size(output_size: int, config: AugmentationConfig) -> int:
    """Side of the patch to crop (around the target, at the sample's scale) before augmenting."""
    return int(math.ceil(output_size * config.expansion_factor))


def _shifted_window(patch: np.ndarray, output_size: int, shift_xy=(0, 0)) -> np.ndarray:
    """The whole-pixel output_size window whose content is the patch moved by +shift (the
    authors' `crop_to_output`), replicating the border where it reaches past the patch."""
    side = patch.shape[0]
    top = math.ceil((side - output_size) / 2) - int(shift_xy[1])
    left = math.ceil((side - output_size) / 2) - int(shift_xy[0])
    rows = np.clip(np.arange(top, top + output_size), 0, side - 1)
    cols = np.clip(np.arange(left, left + output_size), 0, side - 1)
    return patch[rows[:, None], cols[None, :]]


def random_shifts(count: int, output_size: int, factor: float,
                  generator: torch.Generator) -> list[tuple[int, int]]:
    """`count` (dx, dy) whole-pixel shifts as the authors draw them: ((rand(2) - 0.5) * size *
    factor) truncated towards zero, the first draw the row (dy), the second the column (dx)."""
    shifts = []
    for _ in range(count):
        if factor <= 0.0:
            shifts.append((0, 0))
            continue
        draw = ((torch.rand(2, generator=generator) - 0.5) * float(output_size) * factor).long()
        shifts.append((int(draw[1]), int(draw[0])))
    return shifts


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
                        config: AugmentationConfig = AugmentationConfig(),
                        generator: torch.Generator | None = None) -> AugmentedImages:
    """The image part of the first-frame augmentation, in the authors' order, identity first.

    `patch` is a square H x W x 3 (uint8 or float32) crop centred on the target whose side is
    `expanded_patch_size(output_size, config)`; `generator` draws the random shifts (a CPU
    generator seeded with 0 when absent).
    """
    expected = expanded_patch_size(output_size, config)
    if patch.ndim != 3 or patch.shape[2] != 3 or patch.dtype not in (np.uint8, np.float32):
        raise ValueError(f"patch must be an H x W x 3 uint8 or float32 array, "
                         f"got {patch.dtype} {patch.shape}")
    if patch.shape[0] != expected or patch.shape[1] != expected:
        raise ValueError(f"patch must be {expected} x {expected} for output size {output_size} and "
                         f"expansion factor {config.expansion_factor}, got {patch.shape[:2]}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    samples = [(patch, (0, 0))]
    for relative in config.relative_shifts:
        # (row, column) units of half the sample size, truncated as the authors' `.long()`.
        samples.append((patch, (int(relative[1] * output_size / 2.0),
                                int(relative[0] * output_size / 2.0))))
    transformed = []
    if config.flip:
        # The target sits at the centre, so mirroring leaves its position where it was.
        transformed.append(np.ascontiguousarray(patch[:, ::-1]))
    transformed += [_blur(patch, sigma_pair) for sigma_pair in config.blur_sigmas]
    transformed += [_rotate(patch, angle) for angle in config.rotations_deg]
    shifts = random_shifts(len(transformed), output_size, config.random_shift_factor, generator)
    samples += list(zip(transformed, shifts))
    images = [_shifted_window(image, output_size, shift) for image, shift in samples]
    offsets = [shift for _, shift in samples]
    return AugmentedImages(images=np.stack(images),
                           target_offsets=np.asarray(offsets, dtype=np.float64))


def feature_dropout(features: torch.Tensor, num_copies: int, probability: float,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """`num_copies` copies of a 1 x C x H x W feature map with whole channels dropped.

    Channel dropout with the usual 1 / (1 - p) rescaling, the mask drawn as the authors'
    `F.dropout2d` draws it (Bernoulli(1 - p) per sample and channel); a seeded CPU generator
    makes the first-frame model reproducible.
    """
    if features.dim() != 4 or features.shape[0] != 1:
        raise ValueError(f"features must be 1 x C x H x W, got {tuple(features.shape)}")
    channels = features.shape[1]
    # Drawn on the CPU (with a CPU generator) so CPU and CUDA runs drop the same channels.
    mask = torch.empty(num_copies, channels, 1, 1).bernoulli_(1.0 - probability,
                                                              generator=generator)
    mask = (mask / (1.0 - probability)).to(device=features.device, dtype=features.dtype)
    return features * mask
