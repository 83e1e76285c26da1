"""First-frame augmentation: 30 samples, transforms and target offsets."""

import numpy as np
import pytest
import torch

from siam_tracking_ros.core.online.augment import (
    AugmentationConfig, augment_first_frame, expanded_patch_size, feature_dropout)

OUTPUT = 32


def _patch_with_marker() -> np.ndarray:
    side = expanded_patch_size(OUTPUT, AugmentationConfig())
    patch = np.full((side, side, 3), 40, dtype=np.uint8)
    centre = (side - 1) // 2
    patch[centre - 2:centre + 3, centre - 2:centre + 3] = 250
    patch[centre - 2:centre + 3, centre + 8:centre + 11] = 180   # marks the right-hand side
    return patch


def _bright_centroid(image: np.ndarray) -> np.ndarray:
    # Blurring lowers the peak: keep the pixels near the maximum (the side marker stays below).
    level = image[..., 0].astype(float) - 40.0
    mask = level > 0.8 * level.max()
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def test_reference_list_gives_thirty_samples():
    config = AugmentationConfig()
    assert config.num_image_samples == 23 and config.num_samples == 30
    augmented = augment_first_frame(_patch_with_marker(), OUTPUT, config)
    assert augmented.images.shape == (23, OUTPUT, OUTPUT, 3)
    assert augmented.images.dtype == np.uint8
    assert augmented.target_offsets.shape == (23, 2)


def test_identity_flip_and_shifts_place_the_target_where_the_offsets_say():
    augmented = augment_first_frame(_patch_with_marker(), OUTPUT)
    centre = (OUTPUT - 1) / 2.0
    for image, offset in zip(augmented.images, augmented.target_offsets):
        found = _bright_centroid(image) - centre
        assert np.allclose(found, offset, atol=1.0)
    identity, flipped = augmented.images[0], augmented.images[1]
    assert np.array_equal(flipped, identity[:, ::-1]) or np.abs(
        flipped.astype(int) - identity[:, ::-1].astype(int)).max() <= 1
    # A relative shift of 0.6 moves the target by 0.6 * OUTPUT / 2 pixels.
    assert np.allclose(np.abs(augmented.target_offsets[-1]), 0.6 * OUTPUT / 2)


def test_rotation_moves_the_side_marker_and_blur_spreads_the_target():
    config = AugmentationConfig(flip=False, rotations_deg=(90,), blur_sigmas=((3, 1),),
                                relative_shifts=())
    identity, rotated, blurred = augment_first_frame(_patch_with_marker(), OUTPUT, config).images
    centre = int((OUTPUT - 1) // 2)
    assert identity[centre, centre + 8, 0] == 180
    assert rotated[centre - 8, centre, 0] == 180      # counter-clockwise: right goes up
    # sigma_y = 3 > sigma_x = 1: brightness spreads further vertically than horizontally.
    assert blurred[centre - 5, centre, 0] > blurred[centre, centre - 5, 0]


def test_feature_dropout_drops_whole_channels_and_rescales():
    features = torch.ones(1, 50, 4, 4)
    dropped = feature_dropout(features, 7, 0.2, torch.Generator().manual_seed(0))
    assert dropped.shape == (7, 50, 4, 4)
    values = set(torch.unique(dropped).tolist())
    assert values <= {0.0, 1.25}
    per_channel = dropped[:, :, 0, 0]
    assert torch.equal(dropped, per_channel[:, :, None, None].expand_as(dropped))
    assert 0.05 < float((per_channel == 0).float().mean()) < 0.4


def test_bad_augmentation_input_is_rejected():
    with pytest.raises(ValueError, match="must be 64 x 64"):
        augment_first_frame(np.zeros((50, 50, 3), np.uint8), OUTPUT)
    with pytest.raises(ValueError, match="H x W x 3"):
        augment_first_frame(np.zeros((64, 64), np.uint8), OUTPUT)
    with pytest.raises(ValueError, match="expansion_factor"):
        AugmentationConfig(expansion_factor=0.5)
    with pytest.raises(ValueError, match="blur sigmas"):
        AugmentationConfig(blur_sigmas=((1.0, 0.0),))
