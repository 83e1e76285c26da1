"""The crops equal the references' crops pixel for pixel.

The expected crops are made the way each reference makes them: pysot writes the float mean into a
uint8 canvas around the image (numpy converts it), siamfc-pytorch pads with
``cv2.copyMakeBorder`` (OpenCV converts it); both resize the uint8 square with ``cv2.resize``.
"""
import cv2
import numpy as np
import pytest
import torch

from siam_tracking_ros.core.crop import (CORNER_RULES, crop_and_resize, crop_and_resize_reference,
                                         crop_and_resize_tensor, pad_colour, square_corners)

DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='CUDA is not available on this machine'))]


def pysot_style_crop(image, center, size, out_size, mean):
    """Whole-image canvas of zeros, the mean assigned around the image, square cut, resized
    unless it already has the output size."""
    side = round(size)
    x_min, y_min = (int(v) for v in np.floor(np.asarray(center) - (side + 1) / 2 + 0.5))
    height, width = image.shape[:2]
    left, top = max(0, -x_min), max(0, -y_min)
    right, bottom = max(0, x_min + side - width), max(0, y_min + side - height)
    canvas = np.zeros((height + top + bottom, width + left + right, 3), np.uint8)
    canvas[:] = mean
    canvas[top:top + height, left:left + width] = image
    square = canvas[y_min + top:y_min + top + side, x_min + left:x_min + left + side]
    return square if side == out_size else cv2.resize(square, (out_size, out_size))


def siamfc_style_crop(image, center, size, out_size, mean):
    """Equal border of ``copyMakeBorder`` with the float mean, square cut, always resized."""
    side = round(size)
    x_min, y_min = (int(v) for v in np.round(np.asarray(center) - (side - 1) / 2))
    height, width = image.shape[:2]
    border = max(0, -x_min, -y_min, x_min + side - width, y_min + side - height)
    if border:
        image = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT,
                                   value=tuple(float(v) for v in mean))
    square = image[y_min + border:y_min + border + side, x_min + border:x_min + border + side]
    return cv2.resize(square, (out_size, out_size), interpolation=cv2.INTER_LINEAR)


REFERENCE_CROPS = {'pysot': pysot_style_crop, 'siamfc': siamfc_style_crop}


def random_requests(rng, count):
    """Images, centres (inside, across borders, outside), sides (down-, up-sampled, equal to the
    output, twice the output), output sizes."""
    for _ in range(count):
        height, width = (int(v) for v in rng.integers(20, 160, size=2))
        image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        out_size = int(rng.choice([17, 31, 63, 127]))
        sides = [rng.uniform(2, 3 * max(height, width)), out_size, 2 * out_size,
                 rng.uniform(2, out_size)]
        centers = rng.uniform(-30, max(height, width) + 30, size=(len(sides), 2))
        yield image, centers, np.asarray(sides, dtype=np.float64), out_size


@pytest.mark.parametrize('rule', CORNER_RULES)
def test_opencv_crop_equals_the_reference_procedure(rule):
    rng = np.random.default_rng(7)
    for image, centers, sides, out_size in random_requests(rng, 40):
        mean = np.mean(image, axis=(0, 1))
        crops = crop_and_resize(image, centers, sides, out_size, pad_colour(mean, rule), rule)
        for crop, center, side in zip(crops, centers, sides):
            expected = REFERENCE_CROPS[rule](image, center, side, out_size, mean)
            np.testing.assert_array_equal(crop, expected)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('rule', CORNER_RULES)
def test_fixed_point_emulation_equals_opencv(device, rule):
    rng = np.random.default_rng(11)
    for image, centers, sides, out_size in random_requests(rng, 25):
        pad = pad_colour(np.mean(image, axis=(0, 1)), rule)
        expected = crop_and_resize(image, centers, sides, out_size, pad, rule)
        from_pixels = crop_and_resize_tensor(image, centers, sides, out_size, pad, rule,
                                             device=device)
        tensor = torch.from_numpy(image).permute(2, 0, 1).float().to(device)
        from_tensor = crop_and_resize_tensor(tensor, centers, sides, out_size, pad, rule)
        for got in (from_pixels, from_tensor):
            assert got.device.type == device and got.dtype == torch.float32
            np.testing.assert_array_equal(got.cpu().numpy().transpose(0, 2, 3, 1), expected)


def test_emulation_on_frame_sized_crops_of_a_smooth_image():
    # Search-sized squares of a 720p-like frame: real images are smooth, rounding ties frequent.
    ys, xs = np.mgrid[0:360, 0:640]
    image = np.stack([(xs * 0.37 + ys * 0.11) % 256, (xs * ys * 0.001) % 256,
                      128 + 100 * np.sin(xs / 23.0)], axis=-1).astype(np.uint8)
    centers = [[320.3, 180.7], [12.0, 350.5], [630.2, 5.9]]
    sides = [301.0, 287.0 * 1.0375, 574.0]
    for rule, out_size in (('pysot', 287), ('siamfc', 255)):
        pad = pad_colour(np.mean(image, axis=(0, 1)), rule)
        expected = crop_and_resize(image, centers, sides, out_size, pad, rule)
        got = crop_and_resize_tensor(image, centers, sides, out_size, pad, rule)
        np.testing.assert_array_equal(got.numpy().transpose(0, 2, 3, 1), expected)


def test_pad_colour_truncates_for_pysot_and_rounds_for_siamfc():
    mean = np.array([133.95, 133.5, 134.5])
    assert pad_colour(mean, 'pysot').tolist() == [133, 133, 134]
    assert pad_colour(mean, 'siamfc').tolist() == [134, 134, 134]
    # ...which is what numpy's uint8 assignment and OpenCV's border value do with the float mean.
    canvas = np.zeros((1, 1, 3), np.uint8)
    canvas[:] = mean
    assert canvas[0, 0].tolist() == pad_colour(mean, 'pysot').tolist()
    border = cv2.copyMakeBorder(np.zeros((1, 1, 3), np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT,
                                value=tuple(mean))
    assert border[0, 0].tolist() == pad_colour(mean, 'siamfc').tolist()
    with pytest.raises(ValueError, match='corner_rule'):
        pad_colour(mean, 'middle')


def test_pysot_and_siamfc_corner_rules():
    # pysot: floor(c - (s + 1) / 2 + 0.5); siamfc-pytorch: round(c - (s - 1) / 2).
    sides, corners = square_corners([[10.0, 10.0]], [5.0], 'pysot')
    assert sides[0] == 5 and corners.tolist() == [[7.0, 7.0]]
    sides, corners = square_corners([[10.0, 10.0]], [5.0], 'siamfc')
    assert corners.tolist() == [[8.0, 8.0]]
    with pytest.raises(ValueError, match='corner_rule'):
        square_corners([[1.0, 1.0]], [3.0], 'middle')


def test_crop_far_outside_the_image_is_all_padding():
    image = np.random.default_rng(5).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    pad = np.array([1, 2, 3], dtype=np.uint8)
    left = crop_and_resize(image, [(-500.0, 9.5)], [40.0], 31, pad)[0]
    right = crop_and_resize_tensor(image, [(900.0, 9.5)], [40.0], 31, pad)[0].permute(1, 2, 0)
    for crop in (left, right):
        assert np.all(np.asarray(crop) == pad)


def test_single_crop_pads_with_the_rounded_mean():
    image = np.random.default_rng(3).integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    mean = np.mean(image, axis=(0, 1))
    crop = crop_and_resize_reference(image, (2.0, 30.0), 60.3, 127, mean, 'siamfc')
    np.testing.assert_array_equal(crop, siamfc_style_crop(image, (2.0, 30.0), 60.3, 127, mean))


def test_three_scales_in_one_call_match_separate_calls():
    image = np.random.default_rng(13).integers(0, 256, size=(50, 70, 3), dtype=np.uint8)
    centers = np.array([[33.0, 21.0]] * 3)
    sizes = 80.0 * 1.0375 ** np.array([-1.0, 0.0, 1.0])
    pad = np.array([1, 2, 3], dtype=np.uint8)
    batched = crop_and_resize_tensor(image, centers, sizes, 63, pad)
    assert batched.shape == (3, 3, 63, 63)
    for index in range(3):
        single = crop_and_resize_tensor(image, centers[index:index + 1], sizes[index:index + 1],
                                        63, pad)
        torch.testing.assert_close(batched[index], single[0])


@pytest.mark.parametrize('kwargs, message', [
    (dict(centers=[[1.0, 1.0]], sizes=[2.0, 3.0]), '1 centres but 2 sizes'),
    (dict(centers=[[np.nan, 1.0]], sizes=[2.0]), 'finite'),
    (dict(centers=[[1.0, 1.0]], sizes=[0.2]), 'at least 1 pixel'),
])
@pytest.mark.parametrize('crop', [crop_and_resize, crop_and_resize_tensor])
def test_bad_requests_raise(crop, kwargs, message):
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match=message):
        crop(image, out_size=5, pad=np.zeros(3, np.uint8), **kwargs)


def test_bad_images_and_pads_raise():
    pad = np.zeros(3, np.uint8)
    with pytest.raises(ValueError, match='uint8 H x W x 3'):
        crop_and_resize(np.zeros((10, 10, 3), np.float32), [[1.0, 1.0]], [3.0], 5, pad)
    with pytest.raises(ValueError, match=r'\(1, 3, H, W\)'):
        crop_and_resize_tensor(torch.zeros(2, 3, 10, 10), [[1.0, 1.0]], [3.0], 5, pad)
    with pytest.raises(ValueError, match='pad_colour'):
        crop_and_resize(np.zeros((10, 10, 3), np.uint8), [[1.0, 1.0]], [3.0], 5, [0.5, 0, 0])
