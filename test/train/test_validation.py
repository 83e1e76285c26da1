"""Model selection on a held-out split: the split is refused where it would not be held out, and
a run keeps its best-validated epoch as best.pth."""
import shutil

import pytest
import torch

from siam_tracking_ros.core.checkpoints import read_checkpoint
from siam_tracking_ros.train.loop import TrainConfig, run_training
from siam_tracking_ros.train.sources import TrainingDataError
from siam_tracking_ros.train.validation import ValidationSplit, best_validation_auc

from test_training import small_recipe


@pytest.fixture
def held_out(sequence_folder, tmp_path):
    """A validation dataset folder holding one sequence, apart from the training data."""
    folder = tmp_path / 'held_out'
    shutil.copytree(sequence_folder, folder / 'moving')
    return folder


def test_a_split_inside_the_training_data_or_the_evaluation_set_is_refused(
        sequence_folder, held_out, tmp_path):
    with pytest.raises(TrainingDataError, match="'moving' lies in the training data"):
        ValidationSplit(sequence_folder.parent).open((str(sequence_folder.parent),))
    with pytest.raises(TrainingDataError, match="'moving' lies in the training data"):
        ValidationSplit(sequence_folder.parent).open(('synth:2', str(sequence_folder)))
    dev = tmp_path / 'uav_dev'
    shutil.copytree(sequence_folder, dev / 'moving')
    with pytest.raises(TrainingDataError, match='evaluation set'):
        ValidationSplit(dev).open(('synth:2',))
    with pytest.raises(ValueError, match='at least 2'):
        ValidationSplit(held_out, max_frames=1)
    split = ValidationSplit(held_out, ('moving',), max_frames=4).open((str(sequence_folder),))
    assert split.names == ['moving'] and len(split['moving']) == 4


def test_best_validation_auc_ignores_unvalidated_epochs():
    history = [{'epoch': 1}, {'epoch': 2, 'validation': {'auc': 0.4}},
               {'epoch': 3, 'validation': {'auc': 0.3}}]
    assert best_validation_auc(history) == 0.4 and best_validation_auc(history[:1]) == -1.0


def test_a_validated_run_keeps_its_best_epoch(coco_folder, held_out, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / 'run'
    metadata = run_training(TrainConfig(
        tracker='siamfc_alexnet', data=(str(coco_folder),), out=out, epochs=3,
        steps_per_epoch=2, batch_size=2, device='cpu', seed=0, progress=False,
        validation=ValidationSplit(held_out)), small_recipe())
    history = metadata['history']
    assert all(0.0 <= entry['validation']['auc'] <= 1.0 for entry in history)
    assert all(set(entry['validation']['sequences']) == {'moving'} for entry in history)
    best = max(history, key=lambda entry: entry['validation']['auc'])
    assert [entry['best'] for entry in history].count(True) >= 1 and best['best']
    _, stored = read_checkpoint(out / 'best.pth')
    assert stored['training']['epochs_done'] == best['epoch']
    assert stored['training']['history'][-1]['validation'] == best['validation']
    assert metadata['validation_split']['sequences'] == ['moving']
    assert (out / 'best.state.pth').is_file()
