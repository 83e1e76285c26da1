"""One-pass evaluation runner with stand-in trackers whose outputs are known."""
import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from siam_tracking_ros.core import boxes
from siam_tracking_ros.eval import ope
from siam_tracking_ros.eval.datasets import open_dataset

CPU = torch.device('cpu')


class OracleTracker:
    """Returns the ground truth (0-based) of each frame, plus optional Gaussian noise."""

    def __init__(self, dataset, noise: float = 0.0, seed: int = 0):
        self.by_first_box = {tuple(boxes.one_based_to_zero_based(s.ground_truth[0])): s
                             for s in dataset}
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.calls = []

    def init(self, image, box):
        assert image.dtype == np.uint8 and image.ndim == 3
        self.sequence = self.by_first_box[tuple(box)]
        self.index = 0
        self.calls.append(('init', box))

    def track(self, image):
        self.index += 1
        truth = self.sequence.ground_truth[self.index]
        box = boxes.one_based_to_zero_based(np.nan_to_num(truth, nan=5.0))
        box = box + self.rng.normal(0.0, self.noise, 4) * [1, 1, 0, 0]
        return SimpleNamespace(box=box, score=1.0)


def make_dataset(root, lengths=(6, 5)):
    for number, length in enumerate(lengths):
        name = f'seq{number}'
        frames = root / 'data_seq' / name
        frames.mkdir(parents=True)
        lines = []
        for index in range(length):
            cv2.imwrite(str(frames / f'{index + 1:06d}.jpg'), np.zeros((40, 60, 3), np.uint8))
            lines.append('NaN,NaN,NaN,NaN' if index == 2 else f'{3 + index},{4 + number},20,10')
        (root / 'anno').mkdir(exist_ok=True)
        (root / 'anno' / f'{name}.txt').write_text('\n'.join(lines) + '\n')
    return open_dataset(root)


def test_tracker_is_initialised_with_the_zero_based_first_box(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    tracker = OracleTracker(dataset)
    run = ope.track_sequence(tracker, dataset['seq0'], CPU)
    assert tracker.calls == [('init', (2.0, 3.0, 20.0, 10.0))]
    # Results come back 1-based; the first line is the initial box itself.
    np.testing.assert_array_equal(run.boxes[0], [3, 4, 20, 10])
    np.testing.assert_array_equal(run.boxes[[0, 1, 3]], dataset['seq0'].ground_truth[[0, 1, 3]])
    assert run.tracked_frames == 5 and run.track_seconds > 0 and run.fps > 0


def test_perfect_tracker_report_and_files(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    out = tmp_path / 'out'
    report = ope.evaluate_trackers(['oracle'], lambda name: OracleTracker(dataset), dataset, out,
                                   CPU, progress=False)
    overall = report['trackers']['oracle']['overall']
    assert overall['auc'] == pytest.approx(20 / 21)
    assert overall['precision_20'] == 1.0 and overall['norm_precision'] == 1.0
    assert overall['frames'] == 11 and overall['scored_frames'] == 9  # NaN frames left out
    lines = (out / 'oracle' / 'seq0.txt').read_text().splitlines()
    assert len(lines) == 6 and lines[0] == '3.0,4.0,20.0,10.0'
    for name in ('results.json', 'results.csv', 'success.png', 'precision.png',
                 'norm_precision.png'):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / 'results.json').read_text())['trackers']['oracle']['overall'][
        'auc'] == pytest.approx(20 / 21)
    csv_lines = (out / 'results.csv').read_text().splitlines()
    assert csv_lines[0].startswith('tracker,sequence,auc,precision_20,norm_precision,fps')
    assert [line.split(',')[1] for line in csv_lines[1:]] == ['OVERALL', 'seq0', 'seq1']


def test_results_json_rescores_to_the_same_figures(tmp_path):
    dataset = make_dataset(tmp_path / 'data', lengths=(12, 9))
    out = tmp_path / 'out'
    trackers = {'noisy': 2.5, 'very_noisy': 8.0}
    ope.evaluate_trackers(list(trackers), lambda name: OracleTracker(dataset, trackers[name]),
                          dataset, out, CPU, progress=False)
    report = json.loads((out / 'results.json').read_text())
    rescored = ope.rescore_results(out, dataset)
    assert sorted(rescored) == sorted(trackers)
    for name, entry in report['trackers'].items():
        assert rescored[name]['overall'].auc == entry['overall']['auc']
        assert rescored[name]['overall'].precision_at_20 == entry['overall']['precision_20']
        assert rescored[name]['overall'].norm_precision_at_02 == entry['overall']['norm_precision']
        for sequence, figures in entry['sequences'].items():
            score = rescored[name]['sequences'][sequence]
            assert score.auc == figures['auc']
            assert score.success.tolist() == figures['curves']['success']
    noisy, very_noisy = (report['trackers'][n]['overall']['auc'] for n in trackers)
    assert very_noisy < noisy < 20 / 21


def test_summary_table_lists_each_tracker(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    report = ope.evaluate_trackers(['a', 'b'], lambda name: OracleTracker(dataset), dataset,
                                   tmp_path / 'out', CPU, progress=False)
    table = ope.summary_table(report).splitlines()
    assert table[0].split() == ['tracker', 'AUC', 'P@20', 'norm', 'P', 'fps', 'frames']
    assert [line.split()[0] for line in table[2:]] == ['a', 'b']
    assert table[2].split()[1] == '0.952'


def test_first_frame_without_ground_truth_is_refused(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    sequence = dataset['seq0']
    sequence.ground_truth[0] = np.nan
    with pytest.raises(ValueError, match='seq0: the first frame has no ground-truth box'):
        ope.track_sequence(OracleTracker(dataset), sequence, CPU)


def test_rescoring_an_empty_folder_is_refused(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    (tmp_path / 'out').mkdir()
    with pytest.raises(FileNotFoundError, match='no <tracker>/<sequence>.txt result files'):
        ope.rescore_results(tmp_path / 'out', dataset)


def test_rescoring_with_a_different_frame_count_names_the_sequence(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    ope.evaluate_trackers(['oracle'], lambda name: OracleTracker(dataset),
                          dataset.truncated(4), tmp_path / 'out', CPU, progress=False)
    with pytest.raises(ValueError, match='sequence seq0: tracker boxes cover 4 frames'):
        ope.rescore_results(tmp_path / 'out', dataset)
