"""Conversion between image messages and BGR uint8 arrays.

Pure numpy / OpenCV over *message-like* objects: anything with the fields of
``sensor_msgs/Image`` (``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``,
``data``) or ``sensor_msgs/CompressedImage`` (``format``, ``data``). No rclpy import, so the
conversion is testable with hand-made messages and reusable by the bag tools.

Decoding avoids copies: the message buffer is viewed with ``np.frombuffer`` and row padding
is sliced away as a strided view. A copy happens only when a colour conversion is needed
(everything except ``bgr8``).
"""

from __future__ import annotations

import array
import io
import os
import tempfile
import threading
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image as PILImage


class ImageConversionError(ValueError):
    """An image message that cannot be turned into a BGR frame.

    ``cause`` is a short stable key (one per kind of problem) so callers can report each
    kind of bad input once instead of once per frame.
    """

    cause = 'image_error'


class UnknownEncodingError(ImageConversionError):
    cause = 'unknown_encoding'


class InvalidImageSizeError(ImageConversionError):
    cause = 'invalid_size'


class StepMismatchError(ImageConversionError):
    cause = 'step_size_mismatch'


class TruncatedImageError(ImageConversionError):
    cause = 'truncated_data'


class CorruptCompressedImageError(ImageConversionError):
    cause = 'corrupt_compressed'


@dataclass(frozen=True)
class RawLayout:
    """How one raw encoding lays out a pixel and how it becomes BGR."""

    channels: int
    bytes_per_channel: int
    # cv2 colour conversion code to BGR, or None when the view is already BGR.
    to_bgr: int | None


# sensor_msgs/image_encodings: "yuv422" is UYVY byte order, "yuv422_yuy2" is YUYV.
RAW_LAYOUTS = {
    'bgr8': RawLayout(3, 1, None),
    'rgb8': RawLayout(3, 1, cv2.COLOR_RGB2BGR),
    'bgra8': RawLayout(4, 1, cv2.COLOR_BGRA2BGR),
    'rgba8': RawLayout(4, 1, cv2.COLOR_RGBA2BGR),
    'mono8': RawLayout(1, 1, cv2.COLOR_GRAY2BGR),
    'mono16': RawLayout(1, 2, cv2.COLOR_GRAY2BGR),
    'yuv422': RawLayout(2, 1, cv2.COLOR_YUV2BGR_UYVY),
    'uyvy': RawLayout(2, 1, cv2.COLOR_YUV2BGR_UYVY),
    'yuv422_yuy2': RawLayout(2, 1, cv2.COLOR_YUV2BGR_YUYV),
    'yuyv': RawLayout(2, 1, cv2.COLOR_YUV2BGR_YUYV),
}

SUPPORTED_ENCODINGS = tuple(sorted(RAW_LAYOUTS))
COMPRESSED_FORMATS = ('jpeg', 'png')

_JPEG_START = b'\xff\xd8'
_JPEG_END = b'\xff\xd9'
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def _layout_for(encoding: str) -> RawLayout:
    layout = RAW_LAYOUTS.get(encoding.lower())
    if layout is None:
        raise UnknownEncodingError(
            f"unsupported image encoding '{encoding}'; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    return layout


def _check_dimensions(height: int, width: int, encoding: str) -> None:
    if height <= 0 or width <= 0:
        raise InvalidImageSizeError(f'image has no pixels: {width}x{height}')
    if RAW_LAYOUTS[encoding.lower()].channels == 2 and width % 2:
        raise InvalidImageSizeError(
            f"'{encoding}' packs two pixels per 4 bytes, so the width must be even, got {width}")


def _byte_buffer(data) -> np.ndarray:
    """The message payload as a flat uint8 view (array.array, bytes, memoryview, ndarray)."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as error:
        raise ImageConversionError(
            f'image data must be a byte buffer, got {type(data).__name__}: {error}') from error


def _rows_view(msg, row_bytes: int) -> np.ndarray:
    """The message buffer as an (height, row_bytes) uint8 view with row padding sliced off."""
    height, step = int(msg.height), int(msg.step)
    if step < row_bytes:
        raise StepMismatchError(
            f'step {step} is smaller than one row of {msg.width} pixels in '
            f"'{msg.encoding}' ({row_bytes} bytes)")
    buffer = _byte_buffer(msg.data)
    expected = height * step
    if buffer.size < expected:
        raise TruncatedImageError(
            f'image data is truncated: {buffer.size} bytes for {height} rows of step {step} '
            f'({expected} bytes expected)')
    if buffer.size > expected:
        raise StepMismatchError(
            f'image data size {buffer.size} does not match step {step} x height {height} '
            f'= {expected} bytes')
    return buffer.reshape(height, step)[:, :row_bytes]


def _mono16_high_bytes(rows: np.ndarray, width: int, big_endian: bool) -> np.ndarray:
    """16-bit grey to 8-bit by keeping the most significant byte (value // 256), as a view."""
    pairs = rows.reshape(rows.shape[0], width, 2)
    return pairs[:, :, 0] if big_endian else pairs[:, :, 1]


def raw_image_to_bgr(msg) -> np.ndarray:
    """A ``sensor_msgs/Image``-like message as an H x W x 3 uint8 BGR array.

    ``bgr8`` returns a view of the message buffer (no copy); other encodings return the
    colour-converted copy. Raises a subclass of :class:`ImageConversionError`.
    """
    encoding = str(msg.encoding)
    layout = _layout_for(encoding)
    height, width = int(msg.height), int(msg.width)
    _check_dimensions(height, width, encoding)
    row_bytes = width * layout.channels * layout.bytes_per_channel
    rows = _rows_view(msg, row_bytes)
    if layout.bytes_per_channel == 2:
        pixels = _mono16_high_bytes(rows, width, bool(msg.is_bigendian))
    elif layout.channels == 1:
        pixels = rows
    else:
        pixels = rows.reshape(height, width, layout.channels)
    if layout.to_bgr is None:
        return pixels
    return cv2.cvtColor(pixels, layout.to_bgr)


def _compressed_kind(fmt: str, head: bytes) -> str:
    """'jpeg' or 'png' from the format string ("jpeg", "bgr8; jpeg compressed bgr8", ...)."""
    lowered = fmt.lower()
    if 'compresseddepth' in lowered:
        raise UnknownEncodingError(f"compressed depth images are not supported (format '{fmt}')")
    if 'jpeg' in lowered or 'jpg' in lowered:
        return 'jpeg'
    if 'png' in lowered:
        return 'png'
    if not lowered.strip():
        if head.startswith(_JPEG_START):
            return 'jpeg'
        if head.startswith(_PNG_SIGNATURE):
            return 'png'
    raise UnknownEncodingError(
        f"unsupported compressed format '{fmt}'; supported: {', '.join(COMPRESSED_FORMATS)}")


def _tail_without_padding(buffer: np.ndarray, window: int = 64) -> bytes:
    """The last two bytes before any trailing zero padding (some drivers pad JPEG buffers)."""
    tail = buffer[-window:]
    nonzero = np.flatnonzero(tail)
    if nonzero.size == 0:
        return b''
    end = int(nonzero[-1]) + 1
    return tail[max(0, end - 2):end].tobytes()


def _check_compressed_framing(kind: str, head: bytes, tail: bytes) -> None:
    """Reject data that is not a whole JPEG/PNG stream before decoding it.

    libjpeg decodes a cut-off stream into a partly grey frame instead of failing, which a
    tracker would silently follow, so a missing end-of-image marker is an error here.
    """
    if kind == 'jpeg':
        if not head.startswith(_JPEG_START):
            raise CorruptCompressedImageError(
                'data is not a JPEG stream (no start-of-image marker)')
        if tail != _JPEG_END:
            raise TruncatedImageError('JPEG data is truncated (no end-of-image marker)')
    elif not head.startswith(_PNG_SIGNATURE):
        raise CorruptCompressedImageError('data is not a PNG stream (bad signature)')


class DecoderMessages:
    """Captures what libjpeg / libpng / OpenCV print on stderr while one image decodes.

    The C decoders write warnings such as "Corrupt JPEG data: premature end of data segment"
    straight to file descriptor 2, where no ROS logger sees them and nothing tells the frame
    apart. While decoding, fd 2 points at a temporary file; afterwards the lines are returned
    to the caller and anything else written meanwhile (another thread's log line) is passed on
    to the real stderr. Decodes are serialised for that.
    """

    _lock = threading.Lock()
    _sink = None

    def __enter__(self) -> 'DecoderMessages':
        DecoderMessages._lock.acquire()
        if DecoderMessages._sink is None:
            DecoderMessages._sink = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(DecoderMessages._sink.fileno(), 2)
        self.lines: list[str] = []
        return self

    def __exit__(self, *exc_info) -> None:
        sink = DecoderMessages._sink
        try:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            sink.seek(0)
            captured = sink.read().decode(errors='replace')
            sink.seek(0)
            sink.truncate()
        finally:
            DecoderMessages._lock.release()
        passed_on = []
        for line in captured.splitlines():
            (self.lines if _is_decoder_message(line) else passed_on).append(line)
        if passed_on:
            os.write(2, ('\n'.join(passed_on) + '\n').encode())


# libjpeg's (jerror.h) and libpng's complaints about the data; other lines, such as a log
# line another thread wrote meanwhile, are passed on untouched.
_DECODER_PREFIXES = ('corrupt jpeg data', 'premature end of jpeg', 'invalid jpeg', 'invalid sos',
                     'inconsistent progression', 'bogus', 'unsupported marker', 'libpng')


def _is_decoder_message(line: str) -> bool:
    return line.strip().lower().startswith(_DECODER_PREFIXES)


def compressed_image_to_bgr(msg) -> np.ndarray:
    """A ``sensor_msgs/CompressedImage``-like message (jpeg or png) as an H x W x 3 BGR array.

    A stream the decoder complains about (libjpeg fills what it cannot decode with grey and
    says so on stderr) is refused with the decoder's words, not tracked.
    """
    buffer = _byte_buffer(msg.data)
    if buffer.size == 0:
        raise TruncatedImageError('compressed image has no data')
    head = buffer[:16].tobytes()
    kind = _compressed_kind(str(msg.format), head)
    _check_compressed_framing(kind, head, _tail_without_padding(buffer))
    with DecoderMessages() as decoder:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if decoder.lines:
        raise CorruptCompressedImageError(
            f"{kind} data is corrupt, the decoder said: {'; '.join(decoder.lines)}")
    if image is None:
        raise CorruptCompressedImageError(f'{kind} data could not be decoded ({buffer.size} bytes)')
    return image


def compressed_image_size(msg) -> tuple[int, int] | None:
    """(width, height) a compressed image will decode to, read from its header without
    decoding it; None when the header cannot be read (the decoder then reports why)."""
    try:
        with PILImage.open(io.BytesIO(_byte_buffer(msg.data).tobytes())) as header:
            return header.size
    except Exception:  # any unreadable header: decoding will refuse it with the reason
        return None


def message_size(msg) -> tuple[int, int] | None:
    """(width, height) of the frame an image message holds (raw: from its fields; compressed:
    from its stream header), or None when unknown."""
    if hasattr(msg, 'format'):
        return compressed_image_size(msg)
    return max(0, int(msg.width)), max(0, int(msg.height))


def bgr_to_raw_fields(image_bgr: np.ndarray) -> dict:
    """The ``sensor_msgs/Image`` fields (without header) for a BGR uint8 frame as ``bgr8``.

    ``data`` is an ``array.array('B')`` filled with one copy of the pixels, which rclpy
    accepts without per-element checks.
    """
    if image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(
            f'expected an H x W x 3 uint8 BGR image, got {image_bgr.dtype} {image_bgr.shape}')
    height, width = image_bgr.shape[:2]
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(image_bgr))
    return {'height': height, 'width': width, 'encoding': 'bgr8', 'is_bigendian': 0,
            'step': width * 3, 'data': data}


def fill_raw_message(msg, image_bgr: np.ndarray):
    """Write a BGR frame into an Image message (header untouched) and return the message."""
    for name, value in bgr_to_raw_fields(image_bgr).items():
        setattr(msg, name, value)
    return msg


def message_to_bgr(msg) -> np.ndarray:
    """Either kind of image message as BGR: CompressedImage has ``format``, Image ``encoding``."""
    if hasattr(msg, 'format'):
        return compressed_image_to_bgr(msg)
    return raw_image_to_bgr(msg)
