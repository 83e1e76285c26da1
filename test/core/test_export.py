"""Export to pysot / siamfc-pytorch layouts: the exact inverse of the checkpoint loader."""
import numpy as np
import pytest
import torch

from siam_tracking_ros.core import export
from siam_tracking_ros.core.checkpoints import read_checkpoint
from siam_tracking_ros.core.registry import build_untrained
from siam_tracking_ros.tools import cli


def seeded(name, seed=0):
    torch.manual_seed(seed)
    return build_untrained(name, device='cpu')


def assert_same_tensors(actual, expected):
    assert sorted(actual) == sorted(expected)
    for key, tensor in expected.items():
        assert torch.equal(actual[key], tensor), key


@pytest.mark.parametrize('name, layout, source_format', [
    ('siamrpn_alexnet', 'pysot', 'pysot'),
    ('siamfc_alexnet', 'siamfc', 'plain'),
])
def test_export_then_load_gives_identical_tensors_and_the_layouts_colour_order(
        tmp_path, name, layout, source_format):
    tracker = seeded(name)
    exported = export.export_tracker(tracker, layout, tmp_path / 'out.pth')
    raw = torch.load(exported.path, weights_only=True)
    assert ('state_dict' in raw) == (layout == 'pysot')  # pysot wraps, siamfc-pytorch is bare
    state_dict, metadata = read_checkpoint(exported.path)
    assert metadata['source_format'] == source_format and metadata['tracker'] == name
    assert metadata['colour_order'] == export.LAYOUTS[layout].colour_order == tracker.colour_order
    assert_same_tensors(state_dict, tracker.model.state_dict())
    loaded = build_untrained(name, device='cpu')
    loaded.load_weights(exported.path)
    assert_same_tensors(loaded.model.state_dict(), tracker.model.state_dict())


def test_weights_for_the_other_colour_order_are_converted_to_the_same_function(tmp_path):
    tracker = seeded('siamfc_alexnet')
    tracker.colour_order = 'BGR'  # e.g. SiamFC weights trained here on BGR crops
    exported = export.export_tracker(tracker, 'siamfc', tmp_path / 'fc.pth')
    state_dict, metadata = read_checkpoint(exported.path)
    assert metadata['colour_order'] == 'RGB'
    key = export.input_convolution_key(state_dict)
    assert key == 'backbone.conv1.0.weight'
    assert torch.equal(state_dict[key], tracker.model.state_dict()[key].flip(1))
    loaded = build_untrained('siamfc_alexnet', device='cpu')
    loaded.load_weights(exported.path)
    image = np.random.default_rng(1).integers(0, 256, (127, 127, 3), dtype=np.uint8)
    with torch.inference_mode():
        expected = tracker.model.features(tracker.image_to_tensor(image))
        actual = loaded.model.features(loaded.image_to_tensor(image))
    assert torch.allclose(actual, expected, rtol=1e-5, atol=1e-4)
    # Converting back restores the original tensors exactly.
    back = export.convert_colour_order(state_dict, 'RGB', 'BGR')
    assert_same_tensors(back, tracker.model.state_dict())


def test_a_seed_trackers_additions_are_left_out_and_the_base_loads_into_the_reference_net(
        tmp_path):
    clnet = seeded('clnet_alexnet')
    exported = export.export_tracker(clnet, 'pysot', tmp_path / 'base.pth')
    assert exported.left_out == ('clnet',)
    base = build_untrained('siamrpn_alexnet', device='cpu')
    base.load_weights(exported.path)  # strict: exactly the SiamRPN AlexNet keys
    expected = {key: value for key, value in clnet.model.state_dict().items()
                if not key.startswith('clnet.')}
    assert_same_tensors(base.model.state_dict(), expected)


def test_export_refuses_a_network_the_layout_has_no_place_for(tmp_path):
    with pytest.raises(ValueError, match='siamfc_alexnet network; the pysot layout'):
        export.export_tracker(seeded('siamfc_alexnet'), 'pysot', tmp_path / 'x.pth')
    with pytest.raises(ValueError, match="unknown export format 'onnx'"):
        export.export_tracker(seeded('siamfc_alexnet'), 'onnx', tmp_path / 'x.pth')
    with pytest.raises(ValueError, match='colour order must be one of'):
        export.convert_colour_order({}, 'RGB', 'GBR')
    assert not (tmp_path / 'x.pth').exists()


def test_export_command_writes_the_layout_and_reports_bad_input_in_one_line(tmp_path, capsys):
    source = tmp_path / 'fc_project.pth'
    from siam_tracking_ros.core.checkpoints import save_checkpoint
    tracker = seeded('siamfc_alexnet', seed=3)
    save_checkpoint(source, 'siamfc_alexnet', tracker.model, tracker.config, {}, 'RGB')
    out = tmp_path / 'fc_ref.pth'
    assert cli.main(['export', '--tracker', 'siamfc_alexnet', '--weights', str(source),
                     '--format', 'siamfc', '--out', str(out)]) == 0
    assert 'siamfc layout' in capsys.readouterr().out
    assert_same_tensors(torch.load(out, weights_only=True), tracker.model.state_dict())
    code = cli.main(['export', '--tracker', 'siamfc_alexnet', '--weights',
                     str(tmp_path / 'missing.pth'), '--format', 'siamfc', '--out', str(out)])
    assert code == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and 'does not exist' in error, error
