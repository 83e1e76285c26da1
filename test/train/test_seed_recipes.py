"""SA-Siam and DSiam training through ``siamtrack train``'s loop, on tiny data.

S-Net learns a classification objective apart from the A-Net; the SA-Siam stage then trains the
attention and fusion modules with S-Net and A-Net frozen (eq. 4); DSiam's fusion maps and lambdas
learn on clips (section 3.5). Each test checks what moved, what stayed, and that the loss falls.
"""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from siam_tracking_ros.core.checkpoints import read_checkpoint, save_checkpoint
from siam_tracking_ros.core.crop import crop_and_resize_reference
from siam_tracking_ros.core.models.semantic import SemanticAlexNet, load_snet_weights
from siam_tracking_ros.core.registry import build_tracker
from siam_tracking_ros.train.augment import AugmentConfig, CropConfig, exemplar_side, make_crop_pair
from siam_tracking_ros.train.checkpointing import state_path, training_tracker
from siam_tracking_ros.train.dataset import PairDataset
from siam_tracking_ros.train.dsiam_recipe import DSiamClipRecipe, clip_frames
from siam_tracking_ros.train.loop import TrainConfig, run_training
from siam_tracking_ros.train.pairs import ImageCache, PairSampler
from siam_tracking_ros.train.recipes import RecipeConfig, recipe_for
from siam_tracking_ros.train.sa_siam_recipe import (SASiamFusionRecipe,
                                                    SASiamSemanticTuningRecipe,
                                                    SemanticClassificationRecipe)
from siam_tracking_ros.train.sources import load_tracks


def tensors(state: dict, prefix: str) -> dict:
    return {key: value.clone() for key, value in state.items() if key.startswith(prefix)}


def same(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.fixture
def siamfc_file(tmp_path: Path) -> Path:
    """A SiamFC (A-Net only) weights file, as ``siamfc_alexnet`` training writes it."""
    torch.manual_seed(3)
    tracker = training_tracker('siamfc_alexnet', 'cpu', None, he_normal_convs=True)
    path = tmp_path / 'siamfc.pth'
    save_checkpoint(path, 'siamfc_alexnet', tracker.model, tracker.config, {}, 'RGB')
    return path


@pytest.fixture
def two_category_stills(tmp_path: Path) -> Path:
    """COCO-format stills: category 1 objects are yellow/red bars, category 2 blue discs."""
    folder = tmp_path / 'two_kinds'
    (folder / 'images').mkdir(parents=True)
    rng = np.random.default_rng(5)
    images, annotations = [], []
    for image_id in range(1, 5):
        frame = np.ascontiguousarray(
            cv2.GaussianBlur(rng.integers(60, 120, size=(160, 200, 3), dtype=np.uint8), (5, 5), 0))
        frame[40:80, 30:70] = (30, 200, 240)
        frame[55:65, 30:70] = (200, 40, 40)
        cv2.circle(frame, (140, 100), 22, (220, 60, 20), -1)
        cv2.imwrite(str(folder / 'images' / f'{image_id}.png'), frame)
        images.append({'id': image_id, 'file_name': f'{image_id}.png', 'width': 200,
                       'height': 160})
        annotations += [
            {'id': 10 * image_id, 'image_id': image_id, 'category_id': 1,
             'bbox': [30, 40, 40, 40], 'iscrowd': 0},
            {'id': 10 * image_id + 1, 'image_id': image_id, 'category_id': 2,
             'bbox': [118, 78, 44, 44], 'iscrowd': 0},
        ]
    document = {'images': images, 'annotations': annotations,
                'categories': [{'id': 1, 'name': 'bar'}, {'id': 2, 'name': 'disc'}]}
    (folder / 'annotations.json').write_text(json.dumps(document))
    return folder


def quick(recipe, lr: float):
    """The recipe with a short, warm-up-free schedule for a few test steps."""
    recipe.optimiser = RecipeConfig(lr=lr, optimizer='adam', schedule='cosine',
                                    final_lr_ratio=0.5, warmup_fraction=0.0, weight_decay=0.0)
    return recipe


def fixed_batch(recipe, data: str, size: int, tracks=None) -> dict:
    tracks = recipe.select_tracks(tracks or load_tracks(data, Path('unused')))
    dataset = PairDataset(PairSampler(tracks, recipe.sampling), recipe, steps=1,
                          batch_size=size, seed=99)
    return default_collate([dataset[i] for i in range(size)])


def batch_loss(recipe, tracker, batch) -> float:
    with torch.no_grad():
        return float(recipe.loss(tracker, batch)[0])


def test_search_region_template_is_the_context_crop_zs():
    image = np.ascontiguousarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3),
                                                                     dtype=np.uint8))
    mean = image.reshape(-1, 3).mean(axis=0)
    box = np.array([150.0, 100.0, 60.0, 40.0])
    still = AugmentConfig(template_shift=0, template_scale=0, search_shift=0, search_scale=0,
                          blur_probability=0, colour_jitter=0, flip_probability=0,
                          grey_probability=0)
    crop = CropConfig(corner_rule='siamfc', template_region='search')
    pair = make_crop_pair((image, mean), box, (image, mean), box, False, crop, still,
                          np.random.default_rng(0))
    side = exemplar_side(box[2:], 0.5) * 255 / 127
    expected = crop_and_resize_reference(image, box[:2] + box[2:] / 2 - 0.5, side, 255, mean,
                                         'siamfc')
    assert pair.template.shape == (255, 255, 3)
    np.testing.assert_array_equal(pair.template, expected)
    # z^s and the search crop of the same frame cover the same square.
    np.testing.assert_array_equal(pair.template, pair.search)
    with pytest.raises(ValueError, match='template_region'):
        CropConfig(template_region='whole')


def test_snet_learns_categories_apart_from_the_anet(two_category_stills, siamfc_file, tmp_path):
    torch.set_num_threads(1)
    recipe = quick(recipe_for('sa_siam_snet'), lr=1e-3)
    assert isinstance(recipe, SemanticClassificationRecipe) and recipe.tracker_name == 'sa_siam'
    config = TrainConfig(tracker='sa_siam_snet', data=(str(two_category_stills),),
                         out=tmp_path / 'snet', epochs=1, steps_per_epoch=8, batch_size=8,
                         device='cpu', init=siamfc_file, progress=False)
    metadata = run_training(config, recipe)
    assert metadata['tracker'] == 'sa_siam' and metadata['trained'] == 'sa_siam_snet'
    assert metadata['recipe']['classes'] == ['two_kinds:1', 'two_kinds:2']
    history = np.loadtxt(tmp_path / 'snet' / 'log.csv', delimiter=',', skiprows=1)
    ce = history[:, 4]
    assert ce[-3:].mean() < 0.7 * ce[:3].mean()  # two classes start near log 2

    checkpoint = tmp_path / 'snet' / 'last.pth'
    state, stored = read_checkpoint(checkpoint)
    anet, _ = read_checkpoint(siamfc_file)
    assert stored['tracker'] == 'sa_siam'
    # The A-Net passes through untouched: S-Net is trained apart from it.
    assert same({f'appearance.{k}': v for k, v in anet.items()}, tensors(state, 'appearance.'))
    loaded = build_tracker('sa_siam', weights=checkpoint, device='cpu')
    assert loaded.snet_loaded
    # The S-Net alone, in torchvision's layout, for pairing with another A-Net.
    snet = SemanticAlexNet()
    load_snet_weights(snet, tmp_path / 'snet' / 'snet.pth')
    assert same({f'extension.semantic.snet.{k}': v for k, v in snet.state_dict().items()},
                tensors(state, 'extension.semantic.snet.'))
    # The classification head lives beside the checkpoint for --resume, not in the tracker.
    assert not any('head' in key for key in state)
    side_state = torch.load(state_path(checkpoint), weights_only=True)
    assert side_state['recipe']['classes'] == [[str(two_category_stills), 1],
                                               [str(two_category_stills), 2]]
    resumed = run_training(TrainConfig(**{**config.__dict__, 'epochs': 2,
                                          'resume': checkpoint}),
                           quick(recipe_for('sa_siam_snet'), lr=1e-3))
    assert resumed['steps_done'] == 16


def test_snet_refuses_data_without_categories(sequence_folder, tmp_path):
    with pytest.raises(ValueError, match='at least two categories'):
        run_training(TrainConfig(tracker='sa_siam_snet', data=(str(sequence_folder),),
                                 out=tmp_path / 'x', device='cpu', progress=False))


def test_sa_siam_stage_trains_attention_and_fusion_only(two_category_stills, siamfc_file,
                                                        tmp_path):
    torch.set_num_threads(1)
    with pytest.raises(ValueError, match='holds no S-Net'):
        run_training(TrainConfig(tracker='sa_siam', data=(str(two_category_stills),),
                                 out=tmp_path / 'bad', device='cpu', init=siamfc_file,
                                 progress=False))
    # A complete SA-Siam file (A-Net + some S-Net) to start from.
    torch.manual_seed(4)
    start = training_tracker('sa_siam', 'cpu', siamfc_file, recipe_for('sa_siam_snet').load_init)
    init = tmp_path / 'sa_siam_init.pth'
    save_checkpoint(init, 'sa_siam', start.model, start.config, {}, 'RGB')
    before_state = start.model.state_dict()

    recipe = quick(SASiamFusionRecipe(), lr=1e-2)
    batch = fixed_batch(recipe, str(two_category_stills), 6)
    initial = training_tracker('sa_siam', 'cpu', init, recipe.load_init)
    before = batch_loss(recipe, initial, batch)
    run_training(TrainConfig(tracker='sa_siam', data=(str(two_category_stills),),
                             out=tmp_path / 'fusion', epochs=1, steps_per_epoch=6, batch_size=4,
                             device='cpu', init=init, progress=False), recipe)
    trained = training_tracker('sa_siam', 'cpu', tmp_path / 'fusion' / 'last.pth',
                               recipe.load_init)
    after_state = trained.model.state_dict()
    for frozen in ('appearance.', 'extension.semantic.snet.', 'extension.appearance_bias'):
        assert same(tensors(before_state, frozen), tensors(after_state, frozen)), frozen
    for learned in ('extension.semantic.attention.', 'extension.semantic.fusion.'):
        assert not same(tensors(before_state, learned), tensors(after_state, learned)), learned
    assert batch_loss(recipe, trained, batch) < before


def test_sa_siam_tune_stage_also_trains_snet_conv4_conv5_at_their_rate(two_category_stills,
                                                                         siamfc_file, tmp_path):
    torch.set_num_threads(1)
    torch.manual_seed(4)
    start = training_tracker('sa_siam', 'cpu', siamfc_file, recipe_for('sa_siam_snet').load_init)
    init = tmp_path / 'sa_siam_init.pth'
    save_checkpoint(init, 'sa_siam', start.model, start.config, {}, 'RGB')
    before_state = start.model.state_dict()

    recipe = quick(recipe_for('sa_siam_tune'), lr=1e-2)
    assert isinstance(recipe, SASiamSemanticTuningRecipe) and recipe.snet_lr_scale == 0.1
    batch = fixed_batch(recipe, str(two_category_stills), 6)
    before = batch_loss(recipe, training_tracker('sa_siam', 'cpu', init, recipe.load_init), batch)
    metadata = run_training(TrainConfig(tracker='sa_siam_tune',
                                        data=(str(two_category_stills),), out=tmp_path / 'tune',
                                        epochs=1, steps_per_epoch=6, batch_size=4, device='cpu',
                                        init=init, progress=False), recipe)
    assert metadata['tracker'] == 'sa_siam' and metadata['recipe']['snet_layers'] == \
        ['conv4', 'conv5']
    trained = training_tracker('sa_siam', 'cpu', tmp_path / 'tune' / 'last.pth', recipe.load_init)
    after_state = trained.model.state_dict()
    snet = 'extension.semantic.snet.features.'
    # conv1-conv3 (features.0/3/6) and the A-Net stay as they were; conv4 / conv5 learn.
    for frozen in ('appearance.', f'{snet}0.', f'{snet}3.', f'{snet}6.',
                   'extension.appearance_bias'):
        assert same(tensors(before_state, frozen), tensors(after_state, frozen)), frozen
    for learned in (f'{snet}8.', f'{snet}10.', 'extension.semantic.fusion.'):
        assert not same(tensors(before_state, learned), tensors(after_state, learned)), learned
    assert batch_loss(recipe, trained, batch) < before
    # The S-Net group runs at a tenth of the scheduled rate of the branch modules.
    groups = torch.load(state_path(tmp_path / 'tune' / 'last.pth'),
                        weights_only=True)['optimizer']['param_groups']
    assert [group['lr_scale'] for group in groups] == [1.0, 0.1]
    assert groups[1]['lr'] == pytest.approx(0.1 * groups[0]['lr'])


def test_sa_siam_tune_refuses_layers_outside_the_semantic_features():
    with pytest.raises(ValueError, match='S-Net layers to tune'):
        SASiamSemanticTuningRecipe(snet_layers=('conv2',))
    with pytest.raises(ValueError, match='S-Net layers to tune'):
        SASiamSemanticTuningRecipe(snet_layers=())


def test_clip_frames_are_increasing_with_bounded_gaps():
    rng = np.random.default_rng(0)
    valid = np.array([0, 1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13])
    for _ in range(50):
        frames = clip_frames(valid, 3, 2, rng)
        positions = np.searchsorted(valid, frames)
        gaps = np.diff(positions)
        assert len(frames) == 4 and np.all(gaps >= 1) and np.all(gaps <= 2)
    # A track just long enough still gives a clip (gaps shrink to 1).
    np.testing.assert_array_equal(clip_frames(valid[:4], 3, 5, rng), valid[:4])
    with pytest.raises(ValueError, match='needs 4 frames'):
        clip_frames(valid[:3], 3, 1, rng)


def test_dsiam_clip_items_follow_the_tracking_loop(sequence_folder):
    recipe = DSiamClipRecipe('dsiam_m', steps=2, max_step=1)
    tracks = recipe.select_tracks(load_tracks(str(sequence_folder), Path('unused')))
    item = recipe.make_item(PairSampler(tracks).sample(np.random.default_rng(0)), ImageCache(),
                            np.random.default_rng(1))
    assert item['first_target'].shape == (127, 127, 3)
    # Frame 0 is scored without transforms: V and W learn from frame 1 only.
    assert item['targets'].shape == (1, 127, 127, 3)
    assert item['regions'].shape == (1, 255, 255, 3)
    assert item['searches'].shape == (2, 255, 255, 3)
    labels = item['labels']
    assert labels.shape == (2, 17, 17) and set(labels.unique().tolist()) == {-1.0, 1.0}
    # The target moves right and down between frames (fixture: +8, +3 px per frame), so the
    # positive disc of the next frame's search lies right of the response centre.
    columns = torch.nonzero(labels[0] > 0)[:, 1].float()
    assert columns.mean() > 8.0


def test_dsiam_m_learns_fusion_maps_and_lambdas_on_clips(sequence_folder, siamfc_file, tmp_path):
    torch.set_num_threads(1)
    recipe = quick(DSiamClipRecipe('dsiam_m', steps=2, max_step=1), lr=5e-2)
    tracks = load_tracks(str(sequence_folder), Path('unused'))
    batch = fixed_batch(recipe, str(sequence_folder), 2, tracks)
    initial = training_tracker('dsiam_m', 'cpu', siamfc_file, recipe.load_init)
    before = batch_loss(recipe, initial, batch)
    before_state = initial.model.state_dict()
    run_training(TrainConfig(tracker='dsiam_m', data=(str(sequence_folder),),
                             out=tmp_path / 'dsiam', epochs=1, steps_per_epoch=4, batch_size=2,
                             device='cpu', init=siamfc_file, progress=False), recipe)
    trained = build_tracker('dsiam_m', weights=tmp_path / 'dsiam' / 'last.pth', device='cpu')
    after_state = trained.model.state_dict()
    assert same(tensors(before_state, 'appearance.'), tensors(after_state, 'appearance.'))
    for learned in ('extension.other_fusion_maps', 'extension.log_variation_regulariser',
                    'extension.log_suppression_regulariser'):
        assert not torch.equal(before_state[learned], after_state[learned]), learned
    maps = trained.extension.fusion_maps()
    torch.testing.assert_close(maps['conv4'] + maps['conv5'], torch.ones(17, 17))
    assert batch_loss(recipe, trained, batch) < before


def test_dsiam_refuses_stills(coco_folder, siamfc_file, tmp_path):
    with pytest.raises(ValueError, match='sequence data'):
        run_training(TrainConfig(tracker='dsiam', data=(str(coco_folder),), out=tmp_path / 'x',
                                 device='cpu', init=siamfc_file, progress=False))


def test_sa_siam_stage_takes_an_imagenet_snet_from_the_config(two_category_stills, siamfc_file,
                                                              tmp_path):
    """``--config snet_weights=alexnet-owt.pth``: that S-Net, not a re-initialised one, trains
    under the fusion modules and ends up in the output file."""
    torch.set_num_threads(1)
    snet_state = {key: torch.randn(value.shape, generator=torch.Generator().manual_seed(7))
                  for key, value in training_tracker('sa_siam', 'cpu', None).model
                  .extension.semantic.snet.state_dict().items()}
    snet_file = tmp_path / 'alexnet-owt-test.pth'
    torch.save(snet_state, snet_file)
    run_training(TrainConfig(tracker='sa_siam', data=(str(two_category_stills),),
                             out=tmp_path / 'fusion', epochs=1, steps_per_epoch=1, batch_size=2,
                             device='cpu', init=siamfc_file, progress=False,
                             tracker_config={'snet_weights': str(snet_file)}))
    state, _ = read_checkpoint(tmp_path / 'fusion' / 'last.pth')
    for key, value in snet_state.items():
        torch.testing.assert_close(state[f'extension.semantic.snet.{key}'], value)


@pytest.fixture
def siamrpn_file(tmp_path: Path) -> Path:
    """A SiamRPN++ AlexNet weights file (the frozen base CLNet trains on)."""
    torch.manual_seed(7)
    tracker = training_tracker('siamrpn_alexnet', 'cpu', None)
    path = tmp_path / 'siamrpn.pth'
    save_checkpoint(path, 'siamrpn_alexnet', tracker.model, tracker.config, {}, 'BGR')
    return path


def test_clnet_trains_its_latent_network_on_a_frozen_base(sequence_folder, siamrpn_file,
                                                          tmp_path):
    torch.set_num_threads(1)
    recipe = quick(recipe_for('clnet_alexnet'), lr=1e-3)
    batch = fixed_batch(recipe, str(sequence_folder), 4)
    initial = training_tracker('clnet_alexnet', 'cpu', siamrpn_file, recipe.load_init)
    before_state = initial.model.state_dict()
    # The run starts from the base itself: the zero-initialised last FC predicts no delta.
    last_fcs = [key for key in before_state if key.startswith('clnet.') and 'predict.4' in key]
    assert last_fcs and all(torch.count_nonzero(before_state[key]) == 0 for key in last_fcs)
    recipe.prepare(initial)
    before = batch_loss(recipe, initial, batch)
    run_training(TrainConfig(tracker='clnet_alexnet', data=(str(sequence_folder),),
                             out=tmp_path / 'clnet', epochs=1, steps_per_epoch=6, batch_size=4,
                             device='cpu', init=siamrpn_file, progress=False), recipe)
    trained = training_tracker('clnet_alexnet', 'cpu', tmp_path / 'clnet' / 'last.pth')
    after_state = trained.model.state_dict()
    base_keys = [key for key in before_state if not key.startswith('clnet.')]
    assert same({k: before_state[k] for k in base_keys}, {k: after_state[k] for k in base_keys})
    assert not same(tensors(before_state, 'clnet.'), tensors(after_state, 'clnet.'))
    assert any(torch.count_nonzero(after_state[key]) > 0 for key in last_fcs)
    recipe.prepare(trained)
    assert batch_loss(recipe, trained, batch) < before
