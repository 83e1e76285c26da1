"""Trackers on synthetic frames: a bright square moving on a dark background.

Random weights cannot track, so the networks are given an "intensity matcher" setting: positive
averaging convolutions, zero biases and identity batch norm make every feature map a smoothed,
non-negative copy of the image, zero where the image is black. Cross-correlation then peaks where
the square aligns with the template, and a black frame gives no response at all, which is what
the LOST logic must notice.
"""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from siam_tracking_ros.core import TrackResult, TrackState, build_tracker
from siam_tracking_ros.core.trackers.base import next_track_state

torch.set_num_threads(1)

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA is not available')
DEVICES = ['cpu', pytest.param('cuda', marks=CUDA)]
SQUARE = 16
HEIGHT, WIDTH = 120, 160
# Small widened searches keep CPU tests fast; they still reach past the normal search region.
LOST_SIZES = {'siamfc_alexnet': 511, 'siamrpn_alexnet': 447, 'siamrpn_r50_l234': 447}


def frame_with_square(x: int, y: int) -> np.ndarray:
    image = np.full((HEIGHT, WIDTH, 3), 30, dtype=np.uint8)
    image[y:y + SQUARE, x:x + SQUARE] = (230, 210, 190)
    return image


def make_intensity_matcher(model: nn.Module) -> None:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.fill_(1.0 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.running_mean.zero_()
                module.running_var.fill_(1.0 - module.eps)
                module.weight.fill_(1.0)
                module.bias.zero_()


def calibrate_rpn_heads(tracker) -> None:
    """Foreground logit = 40 * corr / max(corr) - 36 on the first frame (4 at the peak, 0 at 90%
    of it: the smooth matched-filter response made peaked); regression deltas 0."""
    anchors = tracker.anchor_num
    last_layers = [m.head[3] for name, m in tracker.model.rpn_head.named_modules()
                   if name.endswith('cls') or name.endswith('loc')]
    with torch.no_grad():
        for layer in last_layers:
            layer.weight.zero_()
            layer.bias.zero_()
            if layer.out_channels == 2 * anchors:
                layer.weight[anchors:] = 1.0 / layer.in_channels
        frame_peak = first_frame_peak(tracker)[:, anchors:].max()
        for layer in last_layers:
            if layer.out_channels == 2 * anchors:
                layer.weight[anchors:] *= 40.0 / frame_peak
                layer.bias[anchors:] = -36.0


@torch.inference_mode()
def first_frame_peak(tracker):
    image = tracker.image_to_tensor(frame_with_square(40, 50))
    geometry = tracker.search_geometry()
    _, features = tracker.search_frame(image, geometry)
    output = tracker.run_head(tracker.template_features, features)
    return output.cls.float() if hasattr(output, 'cls') else output.float()


def matcher_tracker(name: str, device: str):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # no shipped weights: set by hand below
        tracker = build_tracker(name, device=device, lost_threshold=0.6, recover_threshold=0.9,
                                lost_instance_size=LOST_SIZES[name])
    make_intensity_matcher(tracker.model)
    tracker.init(frame_with_square(40, 50), (40, 50, SQUARE, SQUARE))
    if name == 'siamfc_alexnet':
        peak = first_frame_peak(tracker).max()
        tracker.model.head.out_scale *= float(4.0 / peak)
    else:
        calibrate_rpn_heads(tracker)
    return tracker


def square_center(x: int, y: int) -> np.ndarray:
    return np.array([x + (SQUARE - 1) / 2, y + (SQUARE - 1) / 2])


def box_center(box) -> np.ndarray:
    return box[:2] + (box[2:] - 1) / 2


def run_lost_and_recover_scenario(tracker):
    x, y = 40, 50
    for _ in range(3):
        x, y = x + 4, y + 2
        result = tracker.track(frame_with_square(x, y))
        assert isinstance(result, TrackResult)
        assert result.state is TrackState.TRACKING
        assert result.box.shape == (4,) and result.box.dtype == np.float64
        assert 0.9 < result.score <= 1.0
        np.testing.assert_allclose(box_center(result.box), square_center(x, y), atol=3.0)
        assert 0.75 * SQUARE < result.box[2] < 1.25 * SQUARE

    normal_size = tracker.search_geometry().out_size
    before = tracker.box.copy()
    blank = tracker.track(np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8))
    assert blank.state is TrackState.LOST
    assert blank.score < 0.6
    np.testing.assert_allclose(blank.box, before)  # a lost frame does not move the box
    assert tracker.search_geometry().out_size == LOST_SIZES[tracker.name] > normal_size

    # The square reappears 24 px away: beyond the normal search region, inside the widened one.
    x += 24
    found = tracker.track(frame_with_square(x, y))
    assert found.state is TrackState.TRACKING
    assert found.score > 0.9
    np.testing.assert_allclose(box_center(found.box), square_center(x, y), atol=4.0)
    assert tracker.search_geometry().out_size == normal_size


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('name', ['siamfc_alexnet', 'siamrpn_alexnet'])
def test_follows_square_goes_lost_on_blank_frame_and_recovers(name, device):
    run_lost_and_recover_scenario(matcher_tracker(name, device))


@CUDA
def test_r50_follows_square_goes_lost_and_recovers_on_cuda():
    run_lost_and_recover_scenario(matcher_tracker('siamrpn_r50_l234', 'cuda'))


@pytest.mark.parametrize('device', DEVICES)
def test_r50_random_weights_output_types(device):
    with pytest.warns(UserWarning, match='randomly initialised'):
        tracker = build_tracker('siamrpn_r50_l234', device=device, lost_threshold=0.0)
    tracker.init(frame_with_square(40, 50), (40, 50, SQUARE, SQUARE))
    result = tracker.track(frame_with_square(44, 52))
    assert result.box.shape == (4,) and np.all(np.isfinite(result.box))
    assert 0.0 <= result.score <= 1.0
    assert result.state is TrackState.TRACKING  # lost_threshold 0 never loses the target


@CUDA
def test_half_precision_on_cuda_tracks_like_float():
    full = matcher_tracker('siamrpn_alexnet', 'cuda')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        half = build_tracker('siamrpn_alexnet', device='cuda', half=True)
    half.model.load_state_dict(full.model.state_dict())
    assert next(half.model.parameters()).dtype == torch.float16
    half.init(frame_with_square(40, 50), (40, 50, SQUARE, SQUARE))
    full.init(frame_with_square(40, 50), (40, 50, SQUARE, SQUARE))
    a, b = full.track(frame_with_square(44, 52)), half.track(frame_with_square(44, 52))
    np.testing.assert_allclose(a.box, b.box, atol=1.0)


def test_half_on_cpu_warns_and_runs_float32():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        tracker = build_tracker('siamfc_alexnet', device='cpu', half=True)
    assert any('half=True is ignored on CPU' in str(w.message) for w in caught)
    assert next(tracker.model.parameters()).dtype == torch.float32


@pytest.fixture(scope='module')
def siamfc():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        return build_tracker('siamfc_alexnet', device='cpu')


def test_track_before_init_raises(siamfc):
    with pytest.raises(RuntimeError, match='before init'):
        siamfc.track(frame_with_square(40, 50))


@pytest.mark.parametrize('image, message', [
    (np.zeros((20, 20, 3), dtype=np.float32), 'uint8'),
    (np.zeros((20, 20), dtype=np.uint8), r'H x W x 3'),
    (np.zeros((20, 20, 4), dtype=np.uint8), r'H x W x 3'),
    (np.zeros((0, 20, 3), dtype=np.uint8), 'empty'),
    ([[0, 1, 2]], 'numpy.ndarray'),
])
def test_bad_images_raise(siamfc, image, message):
    with pytest.raises(ValueError, match=message):
        siamfc.init(image, (1, 1, 5, 5))


@pytest.mark.parametrize('box, message', [
    ((1, 1, 5), '4 values'), ((1, 1, 0, 5), 'positive'), ((1, np.inf, 5, 5), 'finite'),
    ((500, 1, 5, 5), 'does not overlap')])
def test_bad_boxes_raise(siamfc, box, message):
    with pytest.raises(ValueError, match=message):
        siamfc.init(frame_with_square(40, 50), box)


def test_frame_size_change_raises(siamfc):
    siamfc.init(frame_with_square(40, 50), (40, 50, SQUARE, SQUARE))
    with pytest.raises(ValueError, match='differs from the initial'):
        siamfc.track(np.zeros((60, 80, 3), dtype=np.uint8))


def test_state_rule():
    lost, tracking = TrackState.LOST, TrackState.TRACKING
    assert next_track_state(tracking, 0.7, 0.8, 0.998) is lost
    assert next_track_state(lost, 0.9, 0.8, 0.998) is lost  # between thresholds: stays lost
    assert next_track_state(lost, 0.999, 0.8, 0.998) is tracking
    assert next_track_state(tracking, 0.9, 0.8, 0.998) is tracking


def test_rpn_anchor_labels_and_geometry():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        tracker = build_tracker('siamrpn_alexnet', device='cpu')
    tracker.init(frame_with_square(40, 50), (40, 50, SQUARE, SQUARE))
    geometry = tracker.search_geometry()
    anchors = tracker.anchor_boxes_in_image(geometry)
    assert anchors.shape == (5, 21, 21, 4)
    # The centre anchor of ratio 1 is the 64-pixel crop anchor scaled back to the image: the
    # template side is sqrt(32 * 32) = 32 image pixels for 127 crop pixels.
    np.testing.assert_allclose(anchors[2, 10, 10, 2:], [64 * 32 / 127] * 2)
    np.testing.assert_allclose(box_center(anchors[2, 10, 10]), square_center(40, 50))
    positive, negative = tracker.label_anchors(geometry, (40, 50, SQUARE, SQUARE))
    assert positive[2, 10, 10] and not negative[2, 10, 10]
    assert negative[:, 0, 0].all() and not positive[:, 0, 0].any()
    np.testing.assert_allclose(tracker.score_position_to_image(10, 11, geometry),
                               square_center(40, 50) + [8 * 32 / 127, 0])


@pytest.mark.parametrize('bad_value', [np.nan, np.inf])
def test_non_finite_proposal_keeps_box_and_reports_lost(siamfc, bad_value):
    from siam_tracking_ros.core.trackers.base import Localisation
    siamfc.init(frame_with_square(40, 50), (40, 50, SQUARE, SQUARE))
    box_before = siamfc.box.copy()
    proposal = Localisation(center=np.array([bad_value, 60.0]), size=np.array([16.0, 16.0]),
                            score=0.9)
    result = siamfc.commit(proposal)
    assert result.state is TrackState.LOST and result.score == 0.0
    np.testing.assert_allclose(result.box, box_before)
    assert np.all(np.isfinite(siamfc.center)) and np.all(np.isfinite(siamfc.size))
