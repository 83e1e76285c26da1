import numpy as np
import pytest
import torch

from siam_tracking_ros.core.crop import (crop_and_resize, crop_and_resize_reference,
                                         square_corners)

DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='CUDA is not available on this machine'))]


def _to_tensor(image: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float().to(device)


def _max_difference(image, centers, sizes, out_size, rule, device) -> float:
    pad = np.round(image.reshape(-1, 3).mean(axis=0))
    got = crop_and_resize(_to_tensor(image, device), centers, sizes, out_size,
                          torch.tensor(pad), corner_rule=rule).cpu().numpy()
    worst = 0.0
    for index, (center, size) in enumerate(zip(centers, sizes)):
        expected = crop_and_resize_reference(image, center, size, out_size, pad, rule)
        worst = max(worst, np.abs(got[index].transpose(1, 2, 0) - expected).max())
    return worst


def test_pysot_and_siamfc_corner_rules():
    # pysot: floor(c - (s + 1) / 2 + 0.5); siamfc-pytorch: round(c - (s - 1) / 2).
    sides, corners = square_corners([[10.0, 10.0]], [5.0], 'pysot')
    assert sides[0] == 5 and corners.tolist() == [[7.0, 7.0]]
    sides, corners = square_corners([[10.0, 10.0]], [5.0], 'siamfc')
    assert corners.tolist() == [[8.0, 8.0]]
    with pytest.raises(ValueError, match='corner_rule'):
        square_corners([[1.0, 1.0]], [3.0], 'middle')


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('rule', ['pysot', 'siamfc'])
def test_matches_opencv_on_random_crops(device, rule):
    rng = np.random.default_rng(7)
    for _ in range(12):
        height, width = rng.integers(24, 90, size=2)
        image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        centers = rng.uniform(-20, max(height, width) + 20, size=(3, 2))
        sizes = rng.uniform(3, 160, size=3)
        out_size = int(rng.choice([17, 31, 127]))
        assert _max_difference(image, centers, sizes, out_size, rule, device) <= 1.0


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('center', [(2.0, 30.0), (57.0, 30.0), (30.0, 1.5), (30.0, 39.0),
                                    (-5.0, -5.0), (70.0, 50.0)])
def test_crops_crossing_each_border(device, center):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    assert _max_difference(image, [center], [25.3], 127, 'pysot', device) <= 1.0


@pytest.mark.parametrize('device', DEVICES)
def test_crop_larger_than_image_is_mostly_padding(device):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    assert _max_difference(image, [(14.5, 9.5)], [200.0], 255, 'pysot', device) <= 1.0
    pad = np.round(image.reshape(-1, 3).mean(axis=0))
    crop = crop_and_resize(_to_tensor(image, device), [(14.5, 9.5)], [200.0], 255,
                           torch.tensor(pad)).cpu().numpy()[0]
    np.testing.assert_allclose(crop[:, 0, 0], pad, atol=1e-3)


@pytest.mark.parametrize('device', DEVICES)
def test_upsampling_and_same_size_crops(device):
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    # Upsampling (side 9 -> 127) and a 1:1 cut (side 31 -> 31, no resize in the reference).
    assert _max_difference(image, [(30.0, 30.0)], [9.0], 127, 'pysot', device) <= 1.0
    assert _max_difference(image, [(30.0, 30.0)], [31.0], 31, 'siamfc', device) <= 1.0


def test_three_scales_in_one_call_match_separate_calls():
    rng = np.random.default_rng(13)
    image = _to_tensor(rng.integers(0, 256, size=(50, 70, 3), dtype=np.uint8), 'cpu')
    centers = np.array([[33.0, 21.0]] * 3)
    sizes = 80.0 * 1.0375 ** np.array([-1.0, 0.0, 1.0])
    pad = torch.tensor([1.0, 2.0, 3.0])
    batched = crop_and_resize(image, centers, sizes, 63, pad)
    assert batched.shape == (3, 3, 63, 63)
    for index in range(3):
        single = crop_and_resize(image, centers[index:index + 1], sizes[index:index + 1], 63, pad)
        torch.testing.assert_close(batched[index], single[0])


@pytest.mark.parametrize('kwargs, message', [
    (dict(centers=[[1.0, 1.0]], sizes=[2.0, 3.0]), '1 centres but 2 sizes'),
    (dict(centers=[[np.nan, 1.0]], sizes=[2.0]), 'finite'),
    (dict(centers=[[1.0, 1.0]], sizes=[0.2]), 'at least 1 pixel'),
])
def test_bad_requests_raise(kwargs, message):
    image = torch.zeros(1, 3, 10, 10)
    with pytest.raises(ValueError, match=message):
        crop_and_resize(image, out_size=5, pad_value=[0, 0, 0], **kwargs)


def test_bad_image_shape_raises():
    with pytest.raises(ValueError, match=r'\(1, 3, H, W\)'):
        crop_and_resize(torch.zeros(2, 3, 10, 10), [[1.0, 1.0]], [3.0], 5, [0, 0, 0])
