"""Trackers on synthetic frames: a bright square moving on a dark background.

Random weights cannot track, so the networks are given an "intensity matcher" setting: positive
averaging convolutions, zero biases and identity batch norm make every feature map a smoothed,
non-negative copy of the image, zero where the image is black. Cross-correlation then peaks where
the square aligns with the template, and a black frame gives no response at all, which is what
the LOST logic must notice.
"""
import warnings

import cv2

import numpy as np
import pytest
import torch
from torch import nn

from siam_tracking_ros.core import TrackResult, TrackState, build_tracker
from siam_tracking_ros.core.trackers.base import next_track_state
from siam_tracking_ros.core.trackers.siamfc import cubic_resize

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
    overlap = tracker.anchor_overlaps(geometry, (40, 50, SQUARE, SQUARE))
    positive, negative = overlap > 0.6, overlap < 0.3
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


# ---------------------------------------------------------------- reference order of locate
def siamfc_pytorch_choice(responses: np.ndarray, scale_penalty: float, influence: float):
    """(scale, row, col) siamfc-pytorch's update picks from raw float32 responses (S, R, R):
    OpenCV bicubic x16 per scale, in-place penalty, argmax of maxima, in-place min shift and
    sum normalisation, float64 window mix."""
    up = responses.shape[-1] * 16
    maps = np.stack([cv2.resize(r, (up, up), interpolation=cv2.INTER_CUBIC) for r in responses])
    maps[:len(maps) // 2] *= scale_penalty
    maps[len(maps) // 2 + 1:] *= scale_penalty
    scale = int(np.argmax(np.amax(maps, axis=(1, 2))))
    chosen = maps[scale]
    chosen -= chosen.min()
    chosen /= chosen.sum() + 1e-16
    window = np.outer(np.hanning(up), np.hanning(up))
    window /= window.sum()
    chosen = (1 - influence) * chosen + influence * window
    return (scale, *(int(v) for v in np.unravel_index(chosen.argmax(), chosen.shape)))


def near_tie_responses(rng) -> np.ndarray:
    """Smooth random responses whose outer scale, once penalised, equals the middle one's peak
    to the last bit or so: where the order of float32 operations decides."""
    base = cv2.GaussianBlur(rng.normal(size=(17, 17)).astype(np.float32), (5, 5), 1.5) * 10
    responses = np.stack([base, base, base]).astype(np.float32)
    responses[0] = base / np.float32(0.9745) + rng.normal(scale=1e-6, size=base.shape)
    responses[2] += rng.normal(scale=0.05, size=base.shape).astype(np.float32)
    return responses.astype(np.float32)


def test_siamfc_locate_decides_as_siamfc_pytorch_on_near_ties(siamfc):
    from siam_tracking_ros.core.trackers.base import FrameContext
    siamfc.init(frame_with_square(40, 50), (40, 50, SQUARE, SQUARE))
    rng = np.random.default_rng(2)
    config = siamfc.config
    for _ in range(40):
        responses = near_tie_responses(rng)
        frame = FrameContext(image=frame_with_square(40, 50), frame_index=1,
                             geometry=siamfc.search_geometry())
        found = siamfc.locate(torch.from_numpy(responses), frame)
        assert found.details['best_index'] == siamfc_pytorch_choice(
            responses, config.scale_penalty, config.window_influence)


def pysot_choice(cls: np.ndarray, loc: np.ndarray, tracker) -> tuple[int, np.ndarray]:
    """Index pysot's SiamRPNTracker.track picks and its (cx, cy, w, h) update, from one crop's
    cls (2A, S, S) and loc (4A, S, S), on its numpy arrays and dtypes."""
    config, size = tracker.config, tracker.size
    anchors = tracker.anchors(cls.shape[-1]).reshape(-1, 4)
    score = torch.softmax(torch.from_numpy(cls).reshape(2, -1).t(), dim=1)[:, 1].numpy()
    delta = loc.reshape(4, -1).copy()
    delta[0] = delta[0] * anchors[:, 2] + anchors[:, 0]
    delta[1] = delta[1] * anchors[:, 3] + anchors[:, 1]
    delta[2] = np.exp(delta[2]) * anchors[:, 2]
    delta[3] = np.exp(delta[3]) * anchors[:, 3]

    def side(w, h):
        pad = (w + h) * 0.5
        return np.sqrt((w + pad) * (h + pad))

    s_z = np.sqrt((size[0] + 0.5 * np.sum(size)) * (size[1] + 0.5 * np.sum(size)))
    scale_z = config.exemplar_size / s_z
    scale_change = side(delta[2], delta[3]) / side(size[0] * scale_z, size[1] * scale_z)
    ratio_change = (size[0] / size[1]) / (delta[2] / delta[3])
    penalty = np.exp(-(np.maximum(ratio_change, 1 / ratio_change)
                       * np.maximum(scale_change, 1 / scale_change) - 1) * config.penalty_k)
    hanning = np.hanning(cls.shape[-1])
    window = np.tile(np.outer(hanning, hanning).flatten(), tracker.anchor_num)
    pscore = penalty * score * (1 - config.window_influence) + window * config.window_influence
    best = int(np.argmax(pscore))
    box = delta[:, best] / scale_z
    rate = penalty[best] * score[best] * config.lr
    return best, np.array([tracker.center[0] + box[0], tracker.center[1] + box[1],
                           size[0] * (1 - rate) + box[2] * rate,
                           size[1] * (1 - rate) + box[3] * rate])


def test_siamrpn_locate_computes_as_pysot():
    from siam_tracking_ros.core.trackers.base import FrameContext
    from siam_tracking_ros.core.trackers.siamrpn import RPNOutput
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        tracker = build_tracker('siamrpn_alexnet', device='cpu')
    tracker.init(frame_with_square(40, 50), (40, 50, SQUARE + 5, SQUARE))
    rng = np.random.default_rng(4)
    for _ in range(20):
        cls = rng.normal(scale=2.0, size=(10, 21, 21)).astype(np.float32)
        loc = rng.normal(scale=0.3, size=(20, 21, 21)).astype(np.float32)
        output = RPNOutput(torch.from_numpy(cls)[None], torch.from_numpy(loc)[None])
        frame = FrameContext(image=frame_with_square(40, 50), frame_index=1,
                             geometry=tracker.search_geometry(), head_output=output)
        found = tracker.locate(tracker.score_map(output, frame), frame)
        best, expected = pysot_choice(cls, loc, tracker)
        anchor, row, col = found.details['best_index']
        assert anchor * 21 * 21 + row * 21 + col == best
        np.testing.assert_array_equal(np.concatenate([found.center, found.size]), expected)


def test_cubic_resize_is_opencvs_bicubic():
    maps = torch.rand(2, 25, 25, generator=torch.Generator().manual_seed(4))
    resized = cubic_resize(maps, 40)
    for got, source in zip(resized, maps):
        np.testing.assert_allclose(got.numpy(), cv2.resize(source.numpy(), (40, 40),
                                                           interpolation=cv2.INTER_CUBIC))
