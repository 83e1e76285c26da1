"""Image message conversion against hand-made messages (no ROS needed)."""

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from siam_tracking_ros.ros import image_codec
from siam_tracking_ros.ros.image_codec import (
    CorruptCompressedImageError, ImageConversionError, InvalidImageSizeError, StepMismatchError,
    TruncatedImageError, UnknownEncodingError, compressed_image_to_bgr, fill_raw_message,
    message_size, message_to_bgr, raw_image_to_bgr)

# A 2 x 4 BGR frame with a distinct value in every channel of every pixel.
BGR = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3) * 7


def raw_message(pixels: np.ndarray, encoding: str, padding: int = 0, big_endian: bool = False):
    """An Image-like message whose rows are ``pixels`` bytes followed by ``padding`` bytes."""
    height, width = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, padding), 0xEE, np.uint8)], axis=1)
    return SimpleNamespace(height=height, width=width, encoding=encoding,
                           is_bigendian=int(big_endian), step=padded.shape[1],
                           data=array.array('B', padded.tobytes()))


def compressed_message(data: bytes, fmt: str):
    return SimpleNamespace(format=fmt, data=array.array('B', data))


@pytest.mark.parametrize('padding', [0, 5])
def test_bgr8_is_a_view_of_the_message_buffer(padding):
    msg = raw_message(BGR, 'bgr8', padding)
    image = raw_image_to_bgr(msg)
    np.testing.assert_array_equal(image, BGR)
    assert np.shares_memory(image, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize('padding', [0, 3])
def test_rgb8_swaps_channels(padding):
    image = raw_image_to_bgr(raw_message(BGR[:, :, ::-1], 'rgb8', padding))
    np.testing.assert_array_equal(image, BGR)
    assert image.flags.c_contiguous


@pytest.mark.parametrize('padding', [0, 4])
def test_four_channel_encodings_drop_alpha(padding):
    alpha = np.full((2, 4, 1), 99, np.uint8)
    bgra = np.concatenate([BGR, alpha], axis=2)
    rgba = np.concatenate([BGR[:, :, ::-1], alpha], axis=2)
    np.testing.assert_array_equal(raw_image_to_bgr(raw_message(bgra, 'bgra8', padding)), BGR)
    np.testing.assert_array_equal(raw_image_to_bgr(raw_message(rgba, 'rgba8', padding)), BGR)


@pytest.mark.parametrize('padding', [0, 1])
def test_mono8_repeats_the_grey_value(padding):
    grey = BGR[:, :, 0].copy()
    image = raw_image_to_bgr(raw_message(grey, 'mono8', padding))
    assert image.shape == (2, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], grey)


@pytest.mark.parametrize('big_endian', [False, True])
@pytest.mark.parametrize('padding', [0, 3])
def test_mono16_keeps_the_high_byte(big_endian, padding):
    values = np.array([[0x0000, 0x12FF, 0xFF00, 0x8001]], np.uint16)
    stored = values.astype('>u2' if big_endian else '<u2')
    image = raw_image_to_bgr(raw_message(stored, 'mono16', padding, big_endian))
    np.testing.assert_array_equal(image[0, :, 1], [0x00, 0x12, 0xFF, 0x80])


def bt601_bgr(y: int, u: int, v: int) -> np.ndarray:
    """Studio-range BT.601 YUV to BGR, the conversion of a YUV 4:2:2 camera."""
    c, d, e = y - 16, u - 128, v - 128
    red = 1.164 * c + 1.596 * e
    green = 1.164 * c - 0.392 * d - 0.813 * e
    blue = 1.164 * c + 2.017 * d
    return np.clip(np.round([blue, green, red]), 0, 255)


# Two pixel pairs: (Y0, Y1, U, V) per pair.
YUV_PAIRS = [(81, 145, 90, 240), (200, 40, 170, 60)]


def packed_yuv(order: str, padding: int):
    row = []
    for y0, y1, u, v in YUV_PAIRS:
        row += [u, y0, v, y1] if order == 'uyvy' else [y0, u, y1, v]
    return raw_message(np.array([row], np.uint8).reshape(1, 4, 2), 'x', padding)


@pytest.mark.parametrize('encoding,order', [('yuv422', 'uyvy'), ('uyvy', 'uyvy'),
                                            ('yuv422_yuy2', 'yuyv'), ('yuyv', 'yuyv')])
@pytest.mark.parametrize('padding', [0, 6])
def test_yuv422_both_byte_orders(encoding, order, padding):
    msg = packed_yuv(order, padding)
    msg.encoding = encoding
    image = raw_image_to_bgr(msg)
    expected = []
    for y0, y1, u, v in YUV_PAIRS:
        expected += [bt601_bgr(y0, u, v), bt601_bgr(y1, u, v)]
    np.testing.assert_allclose(image[0].astype(float), np.array(expected), atol=2)


def test_unknown_encoding_names_the_supported_ones():
    msg = raw_message(BGR[:, :, 0], 'bayer_rggb8')
    with pytest.raises(UnknownEncodingError, match="unsupported image encoding 'bayer_rggb8'.*mono16"):
        raw_image_to_bgr(msg)


def test_truncated_data():
    msg = raw_message(BGR, 'bgr8')
    msg.data = msg.data[:-1]
    expected = r'truncated: 23 bytes for 2 rows of step 12 \(24 bytes expected\)'
    with pytest.raises(TruncatedImageError, match=expected):
        raw_image_to_bgr(msg)


def test_step_smaller_than_a_row():
    msg = raw_message(BGR, 'bgr8')
    msg.step = 11
    with pytest.raises(StepMismatchError, match='step 11 is smaller than one row .*12 bytes'):
        raw_image_to_bgr(msg)


def test_data_larger_than_step_times_height():
    msg = raw_message(BGR, 'bgr8')
    msg.data.extend(b'\x00' * 12)
    with pytest.raises(StepMismatchError, match='size 36 does not match step 12 x height 2'):
        raw_image_to_bgr(msg)


def test_empty_and_odd_width_images():
    empty = SimpleNamespace(height=0, width=4, encoding='bgr8', is_bigendian=0, step=12,
                            data=array.array('B'))
    with pytest.raises(InvalidImageSizeError, match='no pixels: 4x0'):
        raw_image_to_bgr(empty)
    odd = raw_message(np.zeros((1, 3, 2), np.uint8), 'yuv422')
    with pytest.raises(InvalidImageSizeError, match='width must be even, got 3'):
        raw_image_to_bgr(odd)


def test_non_buffer_data_is_rejected():
    msg = raw_message(BGR, 'bgr8')
    msg.data = 'not bytes'
    with pytest.raises(ImageConversionError, match='byte buffer, got str'):
        raw_image_to_bgr(msg)


def test_errors_carry_distinct_causes():
    causes = {cls.cause for cls in (UnknownEncodingError, InvalidImageSizeError,
                                    StepMismatchError, TruncatedImageError,
                                    CorruptCompressedImageError)}
    assert len(causes) == 5
    assert issubclass(ImageConversionError, ValueError)


def textured_frame(height=24, width=32) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows * 8, cols * 6, (rows + cols) * 4], axis=2).astype(np.uint8)


def encoded(extension: str, image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(extension, image)
    assert ok
    return data.tobytes()


def test_png_round_trip_is_exact():
    frame = textured_frame()
    image = compressed_image_to_bgr(compressed_message(encoded('.png', frame), 'png'))
    np.testing.assert_array_equal(image, frame)


@pytest.mark.parametrize('fmt', ['jpeg', 'rgb8; jpeg compressed bgr8', ''])
def test_jpeg_decodes_close_to_the_source(fmt):
    frame = textured_frame()
    image = compressed_image_to_bgr(compressed_message(encoded('.jpg', frame), fmt))
    assert image.shape == frame.shape
    assert np.abs(image.astype(int) - frame.astype(int)).mean() < 4


def test_jpeg_with_trailing_zero_padding_decodes():
    data = encoded('.jpg', textured_frame()) + b'\x00' * 10
    assert compressed_image_to_bgr(compressed_message(data, 'jpeg')).shape == (24, 32, 3)


def test_truncated_jpeg():
    data = encoded('.jpg', textured_frame())
    with pytest.raises(TruncatedImageError, match='no end-of-image marker'):
        compressed_image_to_bgr(compressed_message(data[:len(data) // 2], 'jpeg'))


def test_corrupt_jpeg():
    data = encoded('.jpg', textured_frame())
    garbage = data[:2] + bytes(200) + data[-2:]
    with pytest.raises(CorruptCompressedImageError, match='jpeg data could not be decoded'):
        compressed_image_to_bgr(compressed_message(garbage, 'jpeg'))
    with pytest.raises(CorruptCompressedImageError, match='not a JPEG stream'):
        compressed_image_to_bgr(compressed_message(b'GIF89a' + data, 'jpeg'))


def test_jpeg_the_decoder_complains_about_is_refused_with_its_words(capfd):
    """libjpeg decodes damaged entropy-coded data into grey blocks, says so on stderr and
    returns a frame: that frame is refused, and stderr carries nothing of it."""
    data = bytearray(encoded('.jpg', textured_frame(96, 128)))
    data[len(data) // 2:len(data) // 2 + 40] = bytes(40)
    with pytest.raises(CorruptCompressedImageError, match='decoder said: Corrupt JPEG data'):
        compressed_image_to_bgr(compressed_message(bytes(data), 'jpeg'))
    assert 'Corrupt JPEG' not in capfd.readouterr().err


def test_message_size_reads_headers_without_decoding():
    frame = textured_frame()
    assert message_size(raw_message(BGR, 'bgr8')) == (4, 2)
    for extension in ('.jpg', '.png'):
        assert message_size(compressed_message(encoded(extension, frame), 'x')) == (32, 24)
    assert message_size(compressed_message(b'not an image', 'jpeg')) is None


def test_truncated_and_corrupt_png():
    data = encoded('.png', textured_frame())
    with pytest.raises(CorruptCompressedImageError, match='png data could not be decoded'):
        compressed_image_to_bgr(compressed_message(data[:len(data) // 2], 'png'))
    with pytest.raises(CorruptCompressedImageError, match='bad signature'):
        compressed_image_to_bgr(compressed_message(data[8:], 'png'))


def test_empty_and_unknown_compressed_formats():
    with pytest.raises(TruncatedImageError, match='no data'):
        compressed_image_to_bgr(compressed_message(b'', 'jpeg'))
    with pytest.raises(UnknownEncodingError, match="unsupported compressed format 'tiff'"):
        compressed_image_to_bgr(compressed_message(b'II*\x00' + bytes(20), 'tiff'))
    with pytest.raises(UnknownEncodingError, match='compressed depth'):
        compressed_image_to_bgr(compressed_message(b'\x89PNG', '16UC1; compressedDepth png'))


def test_message_to_bgr_dispatches_on_the_message_kind():
    frame = textured_frame()
    np.testing.assert_array_equal(message_to_bgr(raw_message(frame, 'bgr8')), frame)
    png = compressed_message(encoded('.png', frame), 'png')
    np.testing.assert_array_equal(message_to_bgr(png), frame)


def test_fill_raw_message_round_trips():
    frame = textured_frame()
    msg = fill_raw_message(SimpleNamespace(), frame[:, ::2])
    assert (msg.encoding, msg.step, msg.height, msg.width) == ('bgr8', 16 * 3, 24, 16)
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'B'
    np.testing.assert_array_equal(raw_image_to_bgr(msg), frame[:, ::2])


def test_fill_raw_message_rejects_non_bgr_arrays():
    with pytest.raises(ValueError, match='H x W x 3 uint8 BGR'):
        fill_raw_message(SimpleNamespace(), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match='float32'):
        image_codec.bgr_to_raw_fields(np.zeros((4, 4, 3), np.float32))
