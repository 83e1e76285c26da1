import dataclasses

import pytest
import torch

from siam_tracking_ros.core.checkpoints import (identify_checkpoint, load_checkpoint,
                                                read_checkpoint, save_checkpoint)
from siam_tracking_ros.core.models.siamese import SiamFCNet, siamrpn_alexnet, siamrpn_r50_l234
from siam_tracking_ros.core.registry import build_tracker, default_config

torch.set_num_threads(1)


def _bn(prefix):
    return [f'{prefix}.{name}' for name in
            ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')]


def _conv_bn(conv, bn):
    return [f'{conv}.weight'] + _bn(bn)


def _depthwise_xcorr(prefix):
    keys = []
    for branch in ('conv_kernel', 'conv_search'):
        keys += _conv_bn(f'{prefix}.{branch}.0', f'{prefix}.{branch}.1')
    keys += _conv_bn(f'{prefix}.head.0', f'{prefix}.head.1')
    keys += [f'{prefix}.head.3.weight', f'{prefix}.head.3.bias']
    return keys


def expected_r50_l234_keys():
    """pysot siamrpn_r50_l234_dwxcorr keys, written out from the reference notes."""
    keys = _conv_bn('backbone.conv1', 'backbone.bn1')
    for layer, blocks in zip((1, 2, 3, 4), (3, 4, 6, 3)):
        for block in range(blocks):
            prefix = f'backbone.layer{layer}.{block}'
            for i in (1, 2, 3):
                keys += _conv_bn(f'{prefix}.conv{i}', f'{prefix}.bn{i}')
            if block == 0:
                keys += _conv_bn(f'{prefix}.downsample.0', f'{prefix}.downsample.1')
    for i in (2, 3, 4):
        keys += _conv_bn(f'neck.downsample{i}.downsample.0', f'neck.downsample{i}.downsample.1')
        for branch in ('cls', 'loc'):
            keys += _depthwise_xcorr(f'rpn_head.rpn{i}.{branch}')
    return keys + ['rpn_head.cls_weight', 'rpn_head.loc_weight']


def expected_siamfc_keys():
    """siamfc-pytorch AlexNetV1 keys: conv1-4 conv + BN, conv5 conv only; no head keys."""
    keys = []
    for i in (1, 2, 3, 4):
        keys += [f'backbone.conv{i}.0.weight', f'backbone.conv{i}.0.bias'] + \
            _bn(f'backbone.conv{i}.1')
    return keys + ['backbone.conv5.0.weight', 'backbone.conv5.0.bias']


def expected_alexnet_rpn_keys():
    keys = []
    for conv, bn in ((0, 1), (4, 5), (8, 9), (11, 12), (14, 15)):
        keys += [f'backbone.features.{conv}.weight', f'backbone.features.{conv}.bias']
        keys += _bn(f'backbone.features.{bn}')
    for branch in ('cls', 'loc'):
        keys += _depthwise_xcorr(f'rpn_head.{branch}')
    return keys


def test_r50_l234_key_layout_and_shapes():
    state = siamrpn_r50_l234().state_dict()
    assert sorted(state) == sorted(expected_r50_l234_keys())
    shapes = {
        'backbone.conv1.weight': (64, 3, 7, 7),
        'backbone.layer1.0.downsample.0.weight': (256, 64, 1, 1),
        'backbone.layer2.0.downsample.0.weight': (512, 256, 3, 3),
        'backbone.layer3.0.downsample.0.weight': (1024, 512, 3, 3),
        'backbone.layer4.0.downsample.0.weight': (2048, 1024, 3, 3),
        'neck.downsample2.downsample.0.weight': (256, 512, 1, 1),
        'neck.downsample4.downsample.0.weight': (256, 2048, 1, 1),
        'rpn_head.rpn2.cls.conv_kernel.0.weight': (256, 256, 3, 3),
        'rpn_head.rpn2.cls.head.3.weight': (10, 256, 1, 1),
        'rpn_head.rpn4.loc.head.3.weight': (20, 256, 1, 1),
        'rpn_head.cls_weight': (3,),
    }
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key


def test_siamfc_key_layout_and_shapes():
    state = SiamFCNet().state_dict()
    assert sorted(state) == sorted(expected_siamfc_keys())
    # Grouped convolutions (groups 2) halve the input channels of conv2, conv4 and conv5.
    assert tuple(state['backbone.conv2.0.weight'].shape) == (256, 48, 5, 5)
    assert tuple(state['backbone.conv4.0.weight'].shape) == (384, 192, 3, 3)
    assert tuple(state['backbone.conv5.0.weight'].shape) == (256, 192, 3, 3)


def test_alexnet_rpn_key_layout():
    state = siamrpn_alexnet().state_dict()
    assert sorted(state) == sorted(expected_alexnet_rpn_keys())
    assert tuple(state['backbone.features.0.weight'].shape) == (96, 3, 11, 11)
    assert tuple(state['backbone.features.4.weight'].shape) == (256, 96, 5, 5)


def _random_state(model):
    generator = torch.Generator().manual_seed(0)
    return {key: (torch.rand(value.shape, generator=generator) if value.is_floating_point()
                  else value.clone()) for key, value in model.state_dict().items()}


@pytest.fixture(scope='module')
def pysot_r50_file(tmp_path_factory):
    """A pysot-format file: weights under 'state_dict' with DataParallel's 'module.' prefix."""
    state = _random_state(siamrpn_r50_l234())
    path = tmp_path_factory.mktemp('ckpt') / 'siamrpn_r50_l234_dwxcorr.pth'
    torch.save({'epoch': 20, 'state_dict': {f'module.{k}': v for k, v in state.items()}}, path)
    return path, state


@pytest.fixture(scope='module')
def siamfc_file(tmp_path_factory):
    state = _random_state(SiamFCNet())
    path = tmp_path_factory.mktemp('ckpt') / 'siamfc_alexnet_e50.pth'
    torch.save(state, path)
    return path, state


def test_pysot_file_loads_strictly(pysot_r50_file):
    path, state = pysot_r50_file
    tracker = build_tracker('siamrpn_r50_l234', weights=path, device='cpu')
    loaded = tracker.model.state_dict()
    torch.testing.assert_close(loaded['rpn_head.rpn3.loc.head.3.weight'],
                               state['rpn_head.rpn3.loc.head.3.weight'])
    assert tracker.colour_order == 'BGR'


def test_siamfc_file_loads_and_is_rgb(siamfc_file):
    path, state = siamfc_file
    tracker = build_tracker('siamfc_alexnet', weights=path, device='cpu')
    torch.testing.assert_close(tracker.model.state_dict()['backbone.conv3.0.weight'],
                               state['backbone.conv3.0.weight'])
    assert tracker.colour_order == 'RGB'
    _, metadata = read_checkpoint(path)
    assert metadata['source_format'] == 'plain' and metadata['tracker'] == 'siamfc_alexnet'


def test_foreign_file_is_refused_naming_keys(siamfc_file):
    path, _ = siamfc_file
    with pytest.raises(ValueError) as error:
        load_checkpoint(path, siamrpn_alexnet(), expected_tracker='siamrpn_alexnet')
    message = str(error.value)
    assert 'siamrpn_alexnet' in message
    assert 'missing keys' in message and 'backbone.features.0.bias' in message
    assert 'unexpected keys: 30' in message and 'backbone.conv1.0.bias' in message
    assert 'looks like a siamfc_alexnet checkpoint' in message


def test_truncated_file_is_refused_naming_missing_keys(pysot_r50_file, tmp_path):
    _, state = pysot_r50_file
    truncated = {k: v for k, v in state.items() if not k.startswith('rpn_head.rpn4.')}
    path = tmp_path / 'truncated.pth'
    torch.save({'state_dict': truncated}, path)
    with pytest.raises(ValueError) as error:
        build_tracker('siamrpn_r50_l234', weights=path, device='cpu')
    message = str(error.value)
    assert 'missing keys: 40' in message
    assert 'rpn_head.rpn4.cls.conv_kernel.0.weight' in message
    assert 'unexpected' not in message


def test_shape_mismatch_is_refused(siamfc_file, tmp_path):
    _, state = siamfc_file
    bad = dict(state)
    bad['backbone.conv5.0.bias'] = torch.zeros(3)
    path = tmp_path / 'bad_shape.pth'
    torch.save(bad, path)
    with pytest.raises(ValueError, match=r'shape-mismatched keys: 1 \(backbone.conv5.0.bias\)'):
        load_checkpoint(path, SiamFCNet())


@dataclasses.dataclass
class PickledConfig:
    """An arbitrary class: unpickling it would run code, so weights_only loading refuses it."""
    x: int = 1


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / 'object.pth'
    torch.save({'state_dict': {'a': torch.zeros(1)}, 'config': PickledConfig()}, path)
    with pytest.raises(ValueError, match='weights_only=True'):
        read_checkpoint(path)


def test_non_tensor_state_is_refused(tmp_path):
    path = tmp_path / 'strings.pth'
    torch.save({'state_dict': {'backbone.conv1.weight': 'not a tensor'}}, path)
    with pytest.raises(ValueError, match='not tensors'):
        read_checkpoint(path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match='does not exist'):
        read_checkpoint(tmp_path / 'absent.pth')


def test_project_format_round_trip(tmp_path):
    net = SiamFCNet()
    config = default_config('siamfc_alexnet')
    path = save_checkpoint(tmp_path / 'mine.pth', 'siamfc_alexnet', net, config,
                           {'data': 'train/got10k-subset', 'epochs': 3}, colour_order='BGR')
    state, metadata = read_checkpoint(path)
    assert metadata['format'] == 'siam_tracking_ros' and metadata['version'] == 1
    assert metadata['tracker'] == 'siamfc_alexnet'
    assert metadata['config'] == dataclasses.asdict(config)
    assert metadata['training']['epochs'] == 3
    tracker = build_tracker('siamfc_alexnet', weights=path, device='cpu')
    # The project format records its own colour order, overriding siamfc-pytorch's RGB.
    assert tracker.colour_order == 'BGR'
    torch.testing.assert_close(tracker.model.state_dict()['backbone.conv1.0.weight'],
                               state['backbone.conv1.0.weight'])


def test_identify_checkpoint_by_signature():
    assert identify_checkpoint(expected_r50_l234_keys()) == 'siamrpn_r50_l234'
    assert identify_checkpoint(expected_alexnet_rpn_keys()) == 'siamrpn_alexnet'
    assert identify_checkpoint(expected_siamfc_keys()) == 'siamfc_alexnet'
    assert identify_checkpoint(['foo.weight']) is None


def test_file_without_batchnorm_counters_loads_and_says_so(pysot_r50_file, tmp_path, caplog):
    # pysot loads such files (older PyTorch saved no counters); they are unused at inference.
    _, state = pysot_r50_file
    counters = [key for key in state if key.endswith('.num_batches_tracked')]
    path = tmp_path / 'no_counters.pth'
    torch.save({'state_dict': {k: v for k, v in state.items() if k not in counters}}, path)
    model = siamrpn_r50_l234()
    with caplog.at_level('INFO', logger='siam_tracking_ros.core.checkpoints'):
        metadata = load_checkpoint(path, model, expected_tracker='siamrpn_r50_l234')
    assert counters and metadata['batch_counters_absent'] == sorted(counters)
    assert 'no BatchNorm num_batches_tracked counters' in metadata['load_message']
    assert f'{len(counters)} absent' in metadata['load_message']
    assert metadata['load_message'] in caplog.text
    torch.testing.assert_close(model.state_dict()['backbone.bn1.running_var'],
                               state['backbone.bn1.running_var'])
    # Files with every key say nothing of the kind; other missing keys still refuse the file.
    full = load_checkpoint(pysot_r50_file[0], siamrpn_r50_l234())
    assert full['batch_counters_absent'] == [] and 'BatchNorm' not in full['load_message']
    torch.save({'state_dict': {k: v for k, v in state.items()
                               if k not in counters and k != 'backbone.bn1.running_var'}}, path)
    with pytest.raises(ValueError, match=r'missing keys: 1 \(backbone.bn1.running_var\)'):
        load_checkpoint(path, siamrpn_r50_l234())
