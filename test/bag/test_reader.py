"""Reading bags back, and the clear errors for bags that cannot serve."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from siam_tracking_ros.bag import convert, messages, reader
from siam_tracking_ros.bag.typestore import DETECTIONS_TYPE, project_typestore
from siam_tracking_ros.tools import cmd_bag


def _bag(tiny_dataset, tmp_path, storage='mcap'):
    options = convert.ConvertOptions(storage=storage, start_ns=5_000_000_000)
    [path] = convert.convert_dataset(tiny_dataset, tmp_path / f'bags_{storage}', options,
                                     report=lambda _line: None)
    return path


def _run_cli(argv) -> int:
    parser = argparse.ArgumentParser()
    cmd_bag.add_arguments(parser)
    return cmd_bag.run(parser.parse_args(argv))


def test_frames_and_ground_truth_read_back(tiny_dataset, tmp_path):
    info = reader.bag_info(_bag(tiny_dataset, tmp_path))
    frames = list(reader.iter_frames(info))
    assert [f.index for f in frames] == list(range(6))
    assert tuple(f.stamp_ns for f in frames) == info.frame_stamps
    truth = reader.read_ground_truth(info)
    assert truth.shape == (6, 4) and np.isnan(truth[3]).all()
    np.testing.assert_allclose(truth[0], [100, 80, 40, 30])


def _ground_truth_only_bag(path):
    store = project_typestore()
    writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connection = writer.add_connection('/ground_truth', DETECTIONS_TYPE, typestore=store)
    message = messages.detection_array_message(store, (1, 2, 3, 4), 10, 'camera')
    writer.write(connection, 10, store.serialize_cdr(message, DETECTIONS_TYPE))
    writer.close()
    return path


def test_bag_without_image_topic(tmp_path, capsys):
    path = _ground_truth_only_bag(tmp_path / 'no_images')
    with pytest.raises(reader.BagError, match='has no sensor_msgs/Image or CompressedImage topic'
                                              r' \(topics: /ground_truth'):
        reader.bag_info(path)
    # The replay command fails on it before looking for any node.
    assert _run_cli(['replay', str(path), '--out', str(tmp_path / 'run')]) == cmd_bag.EXIT_FAILURE
    assert 'has no sensor_msgs/Image' in capsys.readouterr().err
    assert not (tmp_path / 'run').exists()


def test_named_image_topic_missing(tiny_dataset, tmp_path):
    with pytest.raises(reader.BagError, match="no image topic '/camera/image'"):
        reader.bag_info(_bag(tiny_dataset, tmp_path), image_topic='/camera/image')


@pytest.mark.parametrize('storage, suffix', [('mcap', '.mcap'), ('sqlite3', '.db3')])
def test_truncated_storage_file(tiny_dataset, tmp_path, storage, suffix, capsys):
    path = _bag(tiny_dataset, tmp_path, storage)
    storage_file = path / f'{path.name}{suffix}'
    storage_file.write_bytes(storage_file.read_bytes()[:storage_file.stat().st_size // 2])
    with pytest.raises(reader.BagError, match=f'{path}'):
        info = reader.bag_info(path)
        list(reader.iter_frames(info))
    assert _run_cli(['replay', str(path), '--out', str(tmp_path / 'run')]) == cmd_bag.EXIT_FAILURE
    assert str(path) in capsys.readouterr().err


def test_garbage_metadata(tmp_path):
    (tmp_path / 'junk').mkdir()
    (tmp_path / 'junk' / 'metadata.yaml').write_text('just a line\n')
    with pytest.raises(reader.BagError, match='cannot read bag'):
        reader.bag_info(tmp_path / 'junk')


def test_missing_bag(tmp_path):
    with pytest.raises(reader.BagError, match='does not exist'):
        reader.bag_info(tmp_path / 'nothing')


def test_convert_cli_refuses_short_ground_truth(tmp_path, capsys):
    from bag_sequences import write_plain_sequence
    write_plain_sequence(tmp_path / 'data', 'short', 4, truth_lines=2)
    code = _run_cli(['convert', str(tmp_path / 'data'), str(tmp_path / 'bags')])
    assert code == cmd_bag.EXIT_FAILURE
    assert '2 lines but the sequence has 4 frames' in capsys.readouterr().err
