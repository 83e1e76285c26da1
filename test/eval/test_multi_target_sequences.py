"""Multi-target sequences: synthetic ones (``synth --targets``), the dataset layout
``anno/<seq>/<target>.txt`` and their one-pass evaluation."""
import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch

from siam_tracking_ros.core import boxes
from siam_tracking_ros.eval import ope, synth
from siam_tracking_ros.eval.baselines import CSRT_NAME, csrt_available
from siam_tracking_ros.eval.datasets import open_dataset
from siam_tracking_ros.tools import cli

CONFIG = synth.SynthConfig(frames=6, width=320, height=240)


@pytest.fixture(scope='module')
def multi_dataset(tmp_path_factory):
    """Two synthetic 3-target sequences beside a single-target one."""
    root = tmp_path_factory.mktemp('multi')
    assert cli.main(['synth', '--out', str(root), '--sequences', '2', '--seed', '5', '--frames',
                     '6', '--size', '320x240', '--targets', '3']) == 0
    synth.write_sequence(root, dataclasses.replace(synth.generate_sequence(9, 0, CONFIG),
                                                   name='single'))
    return root


def test_more_targets_render_the_same_frames_and_main_target():
    for index in range(3):
        alone = synth.generate_sequence(5, index, CONFIG)
        several = synth.generate_sequence(5, index, CONFIG, targets=3)
        assert all(np.array_equal(a, b) for a, b in zip(alone.frames, several.frames))
        np.testing.assert_array_equal(alone.ground_truth, several.ground_truth)
        assert alone.other_targets == {} and 1 <= len(several.other_targets) <= 2
        assert list(several.other_targets) == [f'object{k}' for k in
                                               range(1, len(several.other_targets) + 1)]
    with pytest.raises(ValueError, match='at least 1'):
        synth.generate_sequence(5, 0, CONFIG, targets=0)


def test_other_targets_are_boxes_of_distractors_in_view():
    # The box centre of each further target is its distractor's world position seen through the
    # first frame's camera (the sprite is posed around that point).
    checked = 0
    for index in range(3):
        rng = synth.sequence_rng(5, index)
        scene = synth.build_scene(rng, CONFIG, None)
        camera = synth.camera_path(rng, CONFIG, synth.scene_geometry(CONFIG), scene.target)
        seen = [cv2.perspectiveTransform(obj.positions[0].reshape(1, 1, 2).astype(np.float64),
                                         camera.homographies[0]).reshape(2)
                for obj in scene.distractors]
        for track in synth.generate_sequence(5, index, CONFIG, targets=3).other_targets.values():
            box = boxes.one_based_to_zero_based(track[0])
            centre = box[:2] + box[2:] / 2
            distance = min(np.linalg.norm(centre - point) for point in seen)
            if np.all(box[:2] > 1) and np.all(box[:2] + box[2:] < [CONFIG.width - 1,
                                                                   CONFIG.height - 1]):
                assert distance < 0.25 * box[2:].max()
                checked += 1
    assert checked > 0


def test_layout_one_sequence_per_target_beside_single_target_sequences(multi_dataset):
    anno = multi_dataset / 'anno'
    assert (anno / 'synth_000' / 'target.txt').is_file() and (anno / 'single.txt').is_file()
    dataset = open_dataset(multi_dataset)
    targets = sorted(path.stem for path in (anno / 'synth_000').glob('*.txt'))
    assert [name for name in dataset.names if name.startswith('synth_000/')] == [
        f'synth_000/{target}' for target in targets]
    assert 'single' in dataset.names and 'synth_000' not in dataset.names
    main = dataset['synth_000/target']
    assert main.frame_paths == dataset[f'synth_000/{targets[0]}'].frame_paths
    assert main.frame_paths[0].parent == multi_dataset / 'data_seq' / 'synth_000'
    np.testing.assert_allclose(main.ground_truth,
                               synth.generate_sequence(5, 0, CONFIG).ground_truth, atol=0.005)
    selected = open_dataset(multi_dataset, ['synth_001', 'synth_000/target', 'single'])
    assert selected.names == [name for name in dataset.names if name.startswith('synth_001/')] + [
        'synth_000/target', 'single']
    with pytest.raises(KeyError, match='synth_000/ghost'):
        open_dataset(multi_dataset, ['synth_000/ghost'])


class FirstBoxTracker:
    """Keeps the initial box: a stand-in whose output is known."""

    def init(self, image, box):
        self.box = np.asarray(box, dtype=np.float64)

    def track(self, image):
        return type('Result', (), {'box': self.box})()


def test_each_target_is_evaluated_and_rescored(multi_dataset, tmp_path):
    dataset = open_dataset(multi_dataset)
    report = ope.evaluate_trackers(['still'], lambda name: FirstBoxTracker(), dataset, tmp_path,
                                   torch.device('cpu'), progress=False)
    sequences = report['trackers']['still']['sequences']
    assert sorted(sequences) == sorted(dataset.names)
    for name in dataset.names:
        written = np.loadtxt(tmp_path / 'still' / f'{name}.txt', delimiter=',')
        assert len(written) == len(dataset[name])
        np.testing.assert_allclose(written[0], dataset[name].ground_truth[0], atol=1e-3)
    rescored = ope.rescore_results(tmp_path, dataset)['still']
    assert sorted(rescored['sequences']) == sorted(dataset.names)
    assert rescored['overall'].auc == report['trackers']['still']['overall']['auc']


@pytest.mark.skipif(not csrt_available(), reason='OpenCV CSRT (opencv-contrib) is not installed')
def test_siamtrack_eval_runs_a_multi_target_sequence(multi_dataset, tmp_path):
    code = cli.main(['eval', '--dataset', str(multi_dataset), '--tracker', CSRT_NAME,
                     '--sequences', 'synth_001', '--out', str(tmp_path), '--quiet',
                     '--device', 'cpu'])
    assert code == 0
    report = json.loads((tmp_path / 'results.json').read_text())
    targets = sorted(path.stem for path in (multi_dataset / 'anno' / 'synth_001').glob('*.txt'))
    assert sorted(report['trackers'][CSRT_NAME]['sequences']) == [
        f'synth_001/{target}' for target in targets]

