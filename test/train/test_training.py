"""A few training steps on a tiny set: the loss falls, the checkpoint loads, resume continues.

The SiamFC recipe runs here with small crops (exemplar 87 -> 1x1 template features, search 135
-> 7x7 response): the same fully convolutional network and loss at a fraction of the cost.
"""
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import default_collate

from siam_tracking_ros.core.checkpoints import read_checkpoint, save_checkpoint
from siam_tracking_ros.core.registry import build_tracker
from siam_tracking_ros.train.augment import AugmentConfig, CropConfig
from siam_tracking_ros.train.checkpointing import export_weights, training_tracker
from siam_tracking_ros.train.dataset import PairDataset
from siam_tracking_ros.train.loop import TrainConfig, parameter_groups, run_training
from siam_tracking_ros.train.pairs import PairSampler
from siam_tracking_ros.train.recipes import RecipeConfig, SiamFCRecipe
from siam_tracking_ros.train.sources import load_tracks

SMALL_CROP = CropConfig(exemplar_size=87, instance_size=135, corner_rule='siamfc')
MILD = AugmentConfig(search_shift=8.0, search_scale=0.05, blur_probability=0.0,
                     grey_probability=0.0)


def small_recipe() -> SiamFCRecipe:
    return SiamFCRecipe('siamfc_alexnet', crop=SMALL_CROP, augment=MILD,
                        optimiser=RecipeConfig(lr=1e-3, optimizer='adam', schedule='cosine',
                                               final_lr_ratio=0.1, warmup_fraction=0.0))


def fixed_batch_loss(recipe, tracker, data: str) -> float:
    dataset = PairDataset(PairSampler(load_tracks(data, Path('unused'))), recipe, steps=1,
                          batch_size=8, seed=123)
    batch = default_collate([dataset[i] for i in range(8)])
    tracker.model.train()
    with torch.no_grad():
        return float(recipe.loss(tracker, batch)[0])


def test_prepared_parameters_become_optimiser_groups_with_a_rate_scale():
    first, second = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    (single,) = parameter_groups([first, second])
    assert single['lr_scale'] == 1.0 and list(map(id, single['params'])) == [id(first), id(second)]
    groups = parameter_groups([{'params': [first]}, {'params': (second,), 'lr_scale': 0.25}])
    assert [group['lr_scale'] for group in groups] == [1.0, 0.25]
    assert list(map(id, groups[1]['params'])) == [id(second)]
    with pytest.raises(TypeError, match='not a mixture'):
        parameter_groups([first, {'params': [second]}])


def test_training_lowers_the_loss_and_resumes(coco_folder, tmp_path):
    torch.set_num_threads(1)
    recipe = small_recipe()
    config = TrainConfig(tracker='siamfc_alexnet', data=(str(coco_folder),), out=tmp_path / 'run',
                         epochs=1, steps_per_epoch=6, batch_size=4, device='cpu', seed=0,
                         progress=False)
    torch.manual_seed(config.seed)
    initial = training_tracker('siamfc_alexnet', 'cpu', None, he_normal_convs=True)
    before = fixed_batch_loss(recipe, initial, str(coco_folder))

    metadata = run_training(config, recipe)
    checkpoint = tmp_path / 'run' / 'last.pth'
    trained = build_tracker('siamfc_alexnet', weights=checkpoint, device='cpu')
    after = fixed_batch_loss(recipe, trained, str(coco_folder))
    assert after < 0.8 * before

    state_dict, stored = read_checkpoint(checkpoint)
    assert stored['tracker'] == 'siamfc_alexnet' and stored['colour_order'] == 'RGB'
    assert stored['training']['data'] == [str(coco_folder)]
    assert stored['training']['steps_done'] == 6 == metadata['steps_done']
    assert (tmp_path / 'run' / 'log.csv').read_text().count('\n') == 7
    assert (tmp_path / 'run' / 'loss.png').stat().st_size > 0

    resumed = run_training(TrainConfig(**{**config.__dict__, 'epochs': 2,
                                          'resume': checkpoint}), recipe)
    assert resumed['epochs_done'] == 2 and resumed['steps_done'] == 12
    assert [entry['epoch'] for entry in resumed['history']] == [1, 2]
    assert (tmp_path / 'run' / 'log.csv').read_text().count('\n') == 13


def test_bad_training_requests_are_explained(coco_folder, tmp_path):
    with pytest.raises(ValueError, match='--init'):
        run_training(TrainConfig(tracker='clnet_alexnet', data=(str(coco_folder),),
                                 out=tmp_path / 'cl', device='cpu'))
    with pytest.raises(ValueError, match='no training recipe'):
        run_training(TrainConfig(tracker='no_such_tracker', data=(str(coco_folder),),
                                 out=tmp_path / 'x', device='cpu'))
    with pytest.raises(ValueError, match='must all be positive'):
        TrainConfig(tracker='siamfc_alexnet', data=('x',), out=tmp_path, epochs=0)
    with pytest.raises(ValueError, match='training state'):
        run_training(TrainConfig(tracker='siamfc_alexnet', data=(str(coco_folder),),
                                 out=tmp_path / 'r', device='cpu', progress=False,
                                 resume=tmp_path / 'missing.pth'), small_recipe())


class InterruptedRecipe(SiamFCRecipe):
    """small_recipe's rules, with the process 'killed' (an exception) at loss call ``stop_at``."""

    def __init__(self, stop_at: int):
        base = small_recipe()
        super().__init__('siamfc_alexnet', crop=SMALL_CROP, augment=MILD,
                         optimiser=base.optimiser)
        self.calls, self.stop_at = 0, stop_at

    def loss(self, tracker, batch):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt('stopped mid-epoch')
        return super().loss(tracker, batch)


def test_a_run_stopped_mid_epoch_resumes_to_the_same_weights(coco_folder, tmp_path):
    torch.set_num_threads(1)
    settings = dict(tracker='siamfc_alexnet', data=(str(coco_folder),), epochs=2,
                    steps_per_epoch=3, batch_size=2, device='cpu', seed=0, progress=False,
                    checkpoint_every=1)
    whole = run_training(TrainConfig(out=tmp_path / 'whole', **settings), small_recipe())
    with pytest.raises(KeyboardInterrupt):  # during step 5 of 6, the second of epoch 2
        run_training(TrainConfig(out=tmp_path / 'cut', **settings), InterruptedRecipe(5))
    state = torch.load(tmp_path / 'cut' / 'last.state.pth', weights_only=True)
    assert state['step'] == 4 and len(state['epoch_losses']) == 1
    resumed = run_training(TrainConfig(out=tmp_path / 'cut', resume=tmp_path / 'cut' / 'last.pth',
                                       **settings), small_recipe())
    assert resumed['steps_done'] == whole['steps_done'] == 6
    assert [e['mean_loss'] for e in resumed['history']] == [
        e['mean_loss'] for e in whole['history']]
    for name in ('whole', 'cut'):
        assert (tmp_path / name / 'log.csv').read_text().count('\n') == 7
    weights = [read_checkpoint(tmp_path / name / 'last.pth')[0] for name in ('whole', 'cut')]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def test_exported_weights_keep_the_record_and_add_the_scores_that_shipped_them(tmp_path):
    run = save_checkpoint(tmp_path / 'best.pth', 'siamfc_alexnet', nn.Linear(3, 2),
                          {'window_influence': 0.176}, {'steps_done': 200, 'seed': 3})
    scores = {'validation_split': {'auc': 0.31, 'precision_20': 0.63},
              'uav_dev': {'auc': 0.29, 'precision_20': 0.6}}
    shipped = export_weights(run, tmp_path / 'shipped.pth', evaluations=scores)
    state_dict, metadata = read_checkpoint(shipped)
    assert all(value.dtype == torch.float16 for value in state_dict.values())
    assert metadata['training']['steps_done'] == 200 and metadata['training']['seed'] == 3
    assert metadata['training']['evaluations'] == scores
    assert metadata['config'] == {'window_influence': 0.176}
    # Without scores the record is copied as it was.
    _, plain = read_checkpoint(export_weights(run, tmp_path / 'plain.pth'))
    assert 'evaluations' not in plain['training']
