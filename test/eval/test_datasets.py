"""Dataset readers on tiny datasets written to temporary folders, and their errors."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from siam_tracking_ros.eval.datasets import (DatasetError, load_folder_dataset, load_uav123,
                                             open_dataset, read_ground_truth)


def write_frames(folder: Path, count: int, suffix: str = '.jpg') -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        image = np.full((24, 32, 3), 40 * index, np.uint8)
        path = folder / f'{index + 1:06d}{suffix}'
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def make_uav123(root: Path, sequences: dict[str, list[str]]) -> Path:
    for name, lines in sequences.items():
        write_frames(root / 'data_seq' / name, len(lines))
        (root / 'anno').mkdir(parents=True, exist_ok=True)
        (root / 'anno' / f'{name}.txt').write_text('\n'.join(lines) + '\n')
    return root


def test_uav123_layout_keeps_published_one_based_boxes_and_nan_rows(tmp_path):
    root = make_uav123(tmp_path / 'uav', {
        'car1': ['10,20,30,40', 'NaN,NaN,NaN,NaN', '12.5,21,30,41'],
        'bird': ['1,2,3,4', '2,3,4,5']})
    dataset = load_uav123(root)
    assert dataset.names == ['bird', 'car1']
    car = dataset['car1']
    assert len(car) == 3
    np.testing.assert_array_equal(car.ground_truth[0], [10, 20, 30, 40])
    assert np.isnan(car.ground_truth[1]).all()
    assert car.ground_truth[2, 0] == 12.5
    assert [p.name for p in car.frame_paths] == ['000001.jpg', '000002.jpg', '000003.jpg']
    frame = car.read_frame(1)
    assert frame.dtype == np.uint8 and frame.shape == (24, 32, 3)


def test_only_requested_sequences_are_opened(tmp_path):
    root = make_uav123(tmp_path / 'uav', {'good': ['1,1,5,5', '1,1,5,5']})
    (root / 'anno' / 'broken.txt').write_text('1,1,5,5\n')  # no frames: fails only if opened
    assert open_dataset(root, ['good']).names == ['good']
    with pytest.raises(DatasetError, match='frame folder not found'):
        open_dataset(root)


@pytest.mark.parametrize('separator', [',', '\t', ' ', ', '])
def test_folder_layout_with_img_subfolder_reads_any_separator(tmp_path, separator):
    sequence = tmp_path / 'data' / 'Crossing'
    write_frames(sequence / 'img', 2)
    (sequence / 'groundtruth.txt').write_text(
        f'205{separator}151{separator}17{separator}50\n202{separator}150{separator}19'
        f'{separator}49\n')
    dataset = open_dataset(tmp_path / 'data')
    np.testing.assert_array_equal(dataset['Crossing'].ground_truth,
                                  [[205, 151, 17, 50], [202, 150, 19, 49]])


def test_folder_layout_with_frames_beside_ground_truth_and_single_sequence_root(tmp_path):
    sequence = tmp_path / 'seqs' / 'bag'
    write_frames(sequence, 3, suffix='.png')
    (sequence / 'groundtruth.txt').write_text('1,1,4,4\n2,2,4,4\n3,3,4,4\n')
    assert load_folder_dataset(tmp_path / 'seqs').names == ['bag']
    single = open_dataset(sequence)  # a sequence folder is a dataset of one sequence
    assert single.names == ['bag'] and len(single['bag']) == 3


def test_select_and_truncate(tmp_path):
    root = make_uav123(tmp_path / 'uav', {'a': ['1,1,5,5'] * 4, 'b': ['1,1,5,5'] * 3})
    dataset = open_dataset(root)
    assert dataset.select(['b', 'a']).names == ['b', 'a']
    short = dataset.truncated(2)
    assert [len(s) for s in short] == [2, 2]
    assert short['a'].ground_truth.shape == (2, 4)
    assert dataset.truncated(None) is dataset
    with pytest.raises(ValueError, match='at least 2'):
        dataset.truncated(1)


def test_unknown_sequence_names_list_the_available_ones(tmp_path):
    root = make_uav123(tmp_path / 'uav', {'a': ['1,1,5,5'] * 2})
    with pytest.raises(KeyError, match='no sequence named zz, yy .* available: a'):
        open_dataset(root, ['zz', 'yy'])
    with pytest.raises(KeyError, match='no sequence named q'):
        open_dataset(root).select(['q'])


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DatasetError, match='dataset folder not found'):
        open_dataset(tmp_path / 'nowhere')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DatasetError, match='no sequence folders with groundtruth.txt'):
        open_dataset(tmp_path / 'empty')


def test_ground_truth_shorter_than_frames_names_both_counts(tmp_path):
    root = make_uav123(tmp_path / 'uav', {'s': ['1,1,5,5'] * 3})
    (root / 'anno' / 's.txt').write_text('1,1,5,5\n1,1,5,5\n')
    with pytest.raises(DatasetError, match='has 2 lines but the sequence has 3 frames'):
        open_dataset(root)


def test_ground_truth_longer_than_frames_is_refused(tmp_path):
    root = make_uav123(tmp_path / 'uav', {'s': ['1,1,5,5'] * 2})
    (root / 'anno' / 's.txt').write_text('1,1,5,5\n' * 5)
    with pytest.raises(DatasetError, match='has 5 lines but only 2 frames'):
        open_dataset(root)


def test_unreadable_frame_names_the_file(tmp_path):
    root = make_uav123(tmp_path / 'uav', {'s': ['1,1,5,5'] * 2})
    broken = root / 'data_seq' / 's' / '000002.jpg'
    broken.write_bytes(b'not a jpeg')
    sequence = open_dataset(root)['s']
    with pytest.raises(DatasetError, match='cannot read image file .*000002.jpg'):
        sequence.read_frame(1)


@pytest.mark.parametrize('content, message', [
    ('1,2,3\n', r'gt.txt:1: expected 4 values x,y,w,h, found 3'),
    ('1,2,3,4\n1,2,x,4\n', r'gt.txt:2: not a number'),
    ('\n\n', 'ground-truth file is empty'),
])
def test_malformed_ground_truth(tmp_path, content, message):
    path = tmp_path / 'gt.txt'
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_ground_truth(path)


def test_missing_ground_truth_file(tmp_path):
    with pytest.raises(DatasetError, match='ground-truth file not found'):
        read_ground_truth(tmp_path / 'nope.txt')


def test_empty_frame_folder(tmp_path):
    root = make_uav123(tmp_path / 'uav', {'s': ['1,1,5,5']})
    for frame in (root / 'data_seq' / 's').iterdir():
        frame.unlink()
    with pytest.raises(DatasetError, match='no image files'):
        open_dataset(root)
