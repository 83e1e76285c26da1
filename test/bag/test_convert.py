"""convert: bags readable back by rosbags (counts, types, hashes, stamps, pixels, ground truth)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader

from siam_tracking_ros.bag import convert, messages, reader
from siam_tracking_ros.bag.typestore import (COMPRESSED_IMAGE_TYPE, DETECTIONS_TYPE, IMAGE_TYPE,
                                             STATUS_TYPE, project_typestore)
from siam_tracking_ros.core import boxes
from siam_tracking_ros.eval import datasets
from siam_tracking_ros.ros.frames import stamp_to_ns

from bag_sequences import write_plain_sequence

START_NS = 1_700_000_000_123_456_789


def _convert(dataset: Path, out: Path, **options) -> Path:
    settings = dict(start_ns=START_NS, **options)
    [bag_path] = convert.convert_dataset(dataset, out, convert.ConvertOptions(**settings),
                                         report=lambda _line: None)
    return bag_path


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
@pytest.mark.parametrize('image_format', ['raw', 'jpeg'])
def test_bag_holds_frames_and_ground_truth(tiny_dataset, tmp_path, storage, image_format):
    bag_path = _convert(tiny_dataset, tmp_path / 'bags', fps=10.0, storage=storage,
                        image_format=image_format)
    sequence = datasets.open_dataset(tiny_dataset)['square']
    image_type = IMAGE_TYPE if image_format == 'raw' else COMPRESSED_IMAGE_TYPE
    image_topic = '/image' if image_format == 'raw' else '/image/compressed'
    store = project_typestore()
    with Reader(bag_path) as bag:
        topics = {c.topic: c for c in bag.connections}
        assert {t: c.msgtype for t, c in topics.items()} == {
            image_topic: image_type, '/ground_truth': DETECTIONS_TYPE}
        assert all(c.msgcount == 6 for c in topics.values())
        assert bag.message_count == 12
        assert topics[image_topic].digest == store.hash_rihs01(image_type)
        by_topic = {topic: [] for topic in topics}
        for connection, stamp, data in bag.messages():
            by_topic[connection.topic].append(
                (stamp, store.deserialize_cdr(data, connection.msgtype)))
    expected_stamps = [START_NS + index * 100_000_000 for index in range(6)]
    for topic, received in by_topic.items():
        assert [stamp for stamp, _ in received] == expected_stamps
        assert [stamp_to_ns(m.header.stamp) for _, m in received] == expected_stamps
    for index, (_, image) in enumerate(by_topic[image_topic]):
        decoded = messages.image_to_bgr(image)
        assert np.array_equal(decoded, cv2.imread(str(sequence.frame_paths[index])))
        if image_format == 'jpeg':  # JPEG files pass through byte for byte
            assert image.data.tobytes() == sequence.frame_paths[index].read_bytes()
        else:
            assert (image.encoding, image.height, image.width) == ('bgr8', 240, 320)
    truth = [messages.detection_array_box(m) for _, m in by_topic['/ground_truth']]
    assert truth[3] is None
    expected = boxes.one_based_to_zero_based(sequence.ground_truth)
    for index in (0, 1, 2, 4, 5):
        np.testing.assert_allclose(truth[index], expected[index])
    # The centre on the wire is the continuous-pixel centre x + w/2.
    first = by_topic['/ground_truth'][0][1].detections[0].bbox
    assert (first.center.position.x, first.size_x) == (expected[0][0] + 20.0, 40.0)


def test_metadata_is_rosbag2_jazzy(tiny_dataset, tmp_path):
    bag_path = _convert(tiny_dataset, tmp_path / 'bags', storage='sqlite3')
    information = yaml.safe_load((bag_path / 'metadata.yaml').read_text())[
        'rosbag2_bagfile_information']
    assert information['version'] == convert.JAZZY_BAG_VERSION == 8
    assert information['storage_identifier'] == 'sqlite3'
    assert information['relative_file_paths'] == ['square.db3']
    assert information['custom_data'][convert.META_SEQUENCE] == 'square'
    topics = {t['topic_metadata']['name']: t for t in information['topics_with_message_count']}
    assert topics['/ground_truth']['topic_metadata']['type_description_hash'] == (
        project_typestore().hash_rihs01(DETECTIONS_TYPE))
    assert topics['/image']['topic_metadata']['serialization_format'] == 'cdr'


def _ros_type_hash(msgtype: str) -> str:
    """The RIHS01 hash rosidl generated for ``msgtype`` in an installed interface package."""
    package, _, name = msgtype.split('/')
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        description = Path(prefix) / 'share' / package / 'msg' / f'{name}.json'
        if prefix and description.is_file():
            hashes = json.loads(description.read_text())['type_hashes']
            return next(h['hash_string'] for h in hashes if h['type_name'] == msgtype)
    pytest.skip(f'no rosidl type description of {msgtype} installed (AMENT_PREFIX_PATH); '
                'build the interfaces with colcon to compare hashes')


@pytest.mark.parametrize('msgtype', [DETECTIONS_TYPE, STATUS_TYPE, IMAGE_TYPE,
                                     COMPRESSED_IMAGE_TYPE])
def test_type_hashes_match_rosidl(msgtype):
    assert project_typestore().hash_rihs01(msgtype) == _ros_type_hash(msgtype)


def test_bag_messages_deserialize_with_rclpy(tiny_dataset, tmp_path):
    serialization = pytest.importorskip('rclpy.serialization', reason='rclpy is not installed')
    vision = pytest.importorskip('vision_msgs.msg', reason='vision_msgs is not built')
    from sensor_msgs.msg import Image
    bag_path = _convert(tiny_dataset, tmp_path / 'bags')
    with Reader(bag_path) as bag:
        decoded = [serialization.deserialize_message(
                       bytes(data), Image if c.msgtype == IMAGE_TYPE else vision.Detection2DArray)
                   for c, _, data in bag.messages()]
    images = [m for m in decoded if isinstance(m, Image)]
    arrays = [m for m in decoded if not isinstance(m, Image)]
    assert len(images) == len(arrays) == 6
    assert (images[0].width, images[0].height, images[0].encoding) == (320, 240, 'bgr8')
    assert arrays[0].detections[0].bbox.size_x == 40.0 and len(arrays[3].detections) == 0


def test_frame_limit_and_rate(tiny_dataset, tmp_path):
    options = convert.ConvertOptions(fps=30.0, start_ns=START_NS)
    [bag_path] = convert.convert_dataset(tiny_dataset, tmp_path / 'bags', options, max_frames=4,
                                         report=lambda _line: None)
    info = reader.bag_info(bag_path)
    assert info.frame_count == 4 and info.fps == 30.0 and info.sequence == 'square'
    assert np.diff(info.frame_stamps).tolist() == [33_333_333, 33_333_334, 33_333_333]


def test_existing_bag_is_kept_unless_overwrite(tiny_dataset, tmp_path):
    _convert(tiny_dataset, tmp_path / 'bags')
    with pytest.raises(convert.ConversionError, match='exists already'):
        _convert(tiny_dataset, tmp_path / 'bags')
    _convert(tiny_dataset, tmp_path / 'bags', overwrite=True)


def test_png_frames_are_encoded_for_jpeg_bags(tmp_path):
    write_plain_sequence(tmp_path / 'data', 'pngs', 3, suffix='.png')
    bag_path = _convert(tmp_path / 'data', tmp_path / 'bags', image_format='jpeg')
    info = reader.bag_info(bag_path)
    store = project_typestore()
    frame = next(reader.iter_frames(info))
    message = store.deserialize_cdr(frame.data, COMPRESSED_IMAGE_TYPE)
    assert message.format == 'jpeg' and message.data[:2].tobytes() == b'\xff\xd8'


def test_short_ground_truth_is_refused(tmp_path):
    write_plain_sequence(tmp_path / 'data', 'short', 5, truth_lines=3)
    with pytest.raises(datasets.DatasetError, match='3 lines but the sequence has 5 frames'):
        _convert(tmp_path / 'data', tmp_path / 'bags')
    assert not (tmp_path / 'bags' / 'short').exists()


def test_bad_options_are_refused():
    with pytest.raises(convert.ConversionError, match='fps must be positive'):
        convert.ConvertOptions(fps=0)
    with pytest.raises(convert.ConversionError, match='storage must be one of'):
        convert.ConvertOptions(storage='bag')
    with pytest.raises(convert.ConversionError, match='image format'):
        convert.ConvertOptions(image_format='png')
