"""First-frame augmentation: 30 samples, transforms and target offsets."""

import numpy as np
import pytest
import torch

from siam_tracking_ros.core.online.augment import (
    AugmentationConfig, augment_first_frame, expanded_patch_size, feature_dropout, random_shifts)

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


def test_every_sample_places_the_target_where_its_offset_says():
    augmented = augment_first_frame(_patch_with_marker(), OUTPUT,
                                    generator=torch.Generator().manual_seed(5))
    centre = (OUTPUT - 1) / 2.0
    for image, offset in zip(augmented.images, augmented.target_offsets):
        found = _bright_centroid(image) - centre
        assert np.allclose(found, offset, atol=1.0)


def test_authors_order_whole_pixel_shifts_and_random_shifts():
    config = AugmentationConfig()
    generator = torch.Generator().manual_seed(12345)
    augmented = augment_first_frame(_patch_with_marker(), OUTPUT, config, generator)
    offsets = augmented.target_offsets
    assert offsets[0].tolist() == [0.0, 0.0]
    # Relative shifts next, 0.6 * OUTPUT / 2 = 9.6 truncated to 9 pixels, (row, column) pairs.
    assert offsets[1:5].tolist() == [[9, 9], [9, -9], [-9, 9], [-9, -9]]
    # Then flip, five blurs and twelve rotations, each with the random shift drawn in that order.
    expected = random_shifts(18, OUTPUT, config.random_shift_factor,
                             torch.Generator().manual_seed(12345))
    assert [tuple(o) for o in offsets[5:].astype(int).tolist()] == expected
    largest = max(abs(v) for shift in expected for v in shift)
    assert largest <= OUTPUT * config.random_shift_factor / 2
    assert len(set(expected)) > 1
    # Without random shifts the flip is the mirrored identity window (whole-pixel crops).
    plain = augment_first_frame(_patch_with_marker(), OUTPUT,
                                AugmentationConfig(random_shift_factor=0.0))
    patch = _patch_with_marker()
    assert np.array_equal(plain.images[0], patch[16:48, 16:48])
    assert np.array_equal(plain.images[5], patch[:, ::-1][16:48, 16:48])


def test_random_shifts_truncate_the_authors_draw():
    generator = torch.Generator().manual_seed(3)
    draws = [(torch.rand(2, generator=generator) - 0.5) * 100 / 3 for _ in range(4)]
    expected = [(int(d[1]), int(d[0])) for d in draws]
    assert random_shifts(4, 100, 1 / 3, torch.Generator().manual_seed(3)) == expected
    assert random_shifts(2, 100, 0.0, torch.Generator()) == [(0, 0), (0, 0)]


def test_rotation_moves_the_side_marker_and_blur_spreads_the_target():
    config = AugmentationConfig(flip=False, rotations_deg=(90,), blur_sigmas=((3, 1),),
                                relative_shifts=(), random_shift_factor=0.0)
    identity, blurred, rotated = augment_first_frame(_patch_with_marker(), OUTPUT, config).images
    centre = int((OUTPUT - 1) // 2)
    assert identity[centre, centre + 8, 0] == 180
    assert rotated[centre - 8, centre, 0] == 180      # counter-clockwise: right goes up
    # sigma_y = 3 > sigma_x = 1: brightness spreads further vertically than horizontally.
    assert blurred[centre - 5, centre, 0] > blurred[centre, centre - 5, 0]


def test_feature_dropout_drops_whole_channels_and_rescales():
    features = torch.ones(1, 50, 4, 4)
    dropped = feature_dropout(features, 7, 0.2, torch.Generator().manual_seed(0))
    # The mask of F.dropout2d: Bernoulli(1 - p) per sample and channel, over 1 - p.
    keep = torch.empty(7, 50, 1, 1).bernoulli_(0.8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(dropped, (keep / 0.8).expand(7, 50, 4, 4))
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
