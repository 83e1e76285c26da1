"""DROL trackers: configs, reduces-to-base, the fusion order, the short-term template rule, the
classifier update, devices.

Most networks here are randomly initialised or the shipped base weights; the tests check what
DROL computes around the Siamese base, not tracking accuracy (`siamtrack eval` measures that).
"""

import dataclasses
import warnings

import cv2
import numpy as np
import pytest
import torch

from base_equivalence import real_frames, synthetic_frames, tracked_boxes
from siam_tracking_ros.core import windows
from siam_tracking_ros.core.online.classifier import FrameState, ScoreAnalysis
from siam_tracking_ros.core.online.fusion import (antialiased_bicubic_resize,
                                                  min_max_normalise, sum_normalise)
from siam_tracking_ros.core.registry import build_tracker, default_config
from siam_tracking_ros.core.trackers.base import FrameContext, Localisation, TrackState
from siam_tracking_ros.core.trackers.drol import (DROLFCConfig, DROLFCTracker, DROLRPNConfig,
                                                  DROLRPNTracker, DROLSettings, drol_config)
from siam_tracking_ros.core.trackers.siamfc import SiamFCConfig, cubic_resize
from siam_tracking_ros.core.trackers.siamrpn import RPNOutput, SiamRPNConfig

# Few solver iterations and augmentations keep the CPU tests short; the defaults are checked
# separately against the reference constants.
QUICK = dict(init_gn_iter=2, init_cg_iter=6, rotations_deg=(10, -10), blur_sigmas=((2, 0.2),),
             relative_shifts=((0.6, 0.6),), dropout_samples=2)
TRACKER_CLASSES = {"drol_fc": DROLFCTracker, "drol_rpn_alexnet": DROLRPNTracker}
BASES = [("drol_fc", "siamfc_alexnet"), ("drol_rpn_alexnet", "siamrpn_alexnet")]


def _frames(count=6, size=(128, 160)):
    """A textured square moving right over a smooth background."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(0, 255, (*size, 3), dtype=np.uint8), (0, 0), 5)
    patch = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
    frames, boxes = [], []
    for i in range(count):
        frame = background.copy()
        x, y = 50 + 3 * i, 50
        frame[y:y + 24, x:x + 24] = patch
        frames.append(frame)
        boxes.append((x, y, 24.0, 24.0))
    return frames, boxes


# Seeded: the networks are randomly initialised, and a test's outcome must not depend on which
# tests ran before it.
def _fc(**overrides):
    torch.manual_seed(0)
    return DROLFCTracker(drol_config("drol_fc", **{**QUICK, **overrides}))


def _rpn_alexnet(**overrides):
    torch.manual_seed(0)
    return DROLRPNTracker(drol_config("drol_rpn_alexnet", **{**QUICK, **overrides}))


class Recorder:
    """Wraps on_tracked to keep each frame's context."""

    def __init__(self, tracker):
        self.frames = []
        original = tracker.on_tracked

        def on_tracked(result, frame):
            self.frames.append(frame)
            original(result, frame)

        tracker.on_tracked = on_tracked


# ----- configs -----------------------------------------------------------------------------------

def test_registered_configs_carry_base_constants_and_the_authors_drol_constants():
    expected = {  # name: (base, window influence, lambda, v_c, short-term template, drift,
        # seed): the paper's lambdas, the rest from the authors' configs (their AlexNet SiamRPN
        # ones have no template update); the drift damping of their OTB configs is off
        "drol_fc": ("siamfc_alexnet", 0.15, 0.6, 0.1, True, False, 12345),
        "drol_rpn_alexnet": ("siamrpn_alexnet", 0.3, 0.8, 0.5, False, False, 123456),
        "drol_rpn_r50_l234": ("siamrpn_r50_l234", 0.25, 0.8, 0.5, True, False, 123456),
    }
    for name, (base_name, window, weight, gain, template, drift, seed) in expected.items():
        config, base = default_config(name), default_config(base_name)
        base_fields = dataclasses.fields(SiamFCConfig if name == "drol_fc" else SiamRPNConfig)
        for field in base_fields:
            if field.name != "window_influence":
                assert getattr(config, field.name) == getattr(base, field.name), field.name
        assert (config.window_influence, config.fusion_weight, config.template_score_gain,
                config.template_update) == (window, weight, gain, template)
        assert (config.short_term_drift, config.drift_frames, config.drift_damping,
                config.seed) == (drift, 8, 4.0, seed)
        assert config.random_shift_factor == pytest.approx(1 / 3)
        assert config.rotations_deg[-2:] == (-60, 60)
        assert (config.template_interval, config.template_score_threshold,
                config.template_iou_threshold) == (5, 0.75, 0.6)
        assert (config.memory_size, config.filter_regularisation, config.compressed_channels,
                config.filter_size, config.num_samples, config.update_interval,
                config.attention_reduction) == (250, 0.1, 64, 4, 30, 10, 2)
    assert default_config("drol_rpn_r50_l234").average_classifier_layers
    assert not default_config("drol_rpn_alexnet").average_classifier_layers


def test_addition_off_is_the_base_config_with_no_online_subnet():
    for name, base_name in BASES:
        config, base = drol_config(name, enabled=False), default_config(base_name)
        for field in dataclasses.fields(base):
            assert getattr(config, field.name) == getattr(base, field.name), field.name
        assert config.fusion_weight == 0.0 and not config.template_update
        assert not config.uses_online_subnet
    tracker = DROLFCTracker(drol_config("drol_fc", enabled=False))
    frames, boxes = _frames(2)
    tracker.init(frames[0], boxes[0])
    assert tracker.classifier is None


def test_drol_settings_do_not_shadow_base_fields():
    drol_fields = {f.name for f in dataclasses.fields(DROLSettings)}
    for base in (SiamFCConfig, SiamRPNConfig):
        assert not drol_fields & {f.name for f in dataclasses.fields(base)}


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="fusion_weight"):
        DROLFCConfig(fusion_weight=1.2)
    with pytest.raises(ValueError, match="template_interval"):
        DROLRPNConfig(template_interval=0)
    with pytest.raises(ValueError, match="pipeline"):
        DROLRPNConfig(pipeline="att")
    with pytest.raises(ValueError, match="needs a DROLFCConfig"):
        DROLFCTracker(SiamFCConfig())
    with pytest.raises(ValueError, match="drift_frames"):
        DROLRPNConfig(drift_frames=0)


# ----- reduces to the base, box for box ----------------------------------------------------------

def _base_and_drol(name, base_name, **drol_overrides):
    """The base (shipped weights when they ship) and DROL on the same network."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # no weights shipped: both share one random network
        base = build_tracker(base_name, device="cpu")
    drol = TRACKER_CLASSES[name](drol_config(name, enabled=False, **drol_overrides))
    drol.model.load_state_dict(base.model.state_dict())
    drol.colour_order = base.colour_order
    return base, drol


def _assert_same_boxes(base, drol, frames, first_box):
    expected = tracked_boxes(base, frames, first_box)
    np.testing.assert_array_equal(tracked_boxes(drol, frames, first_box), expected)
    assert np.ptp(expected[:, 0]) > 1.0     # the box moved: the comparison covers real tracking


@pytest.mark.shared_data
@pytest.mark.parametrize("name, base_name", BASES)
def test_addition_off_is_the_base_box_for_box_on_a_real_sequence(uav_dev, name, base_name):
    frames, first_box = real_frames(uav_dev, "car16_1")
    _assert_same_boxes(*_base_and_drol(name, base_name), frames, first_box)


@pytest.mark.parametrize("name, base_name", BASES)
def test_addition_off_is_the_base_box_for_box_on_a_synthetic_sequence(name, base_name):
    frames, first_box = synthetic_frames()
    _assert_same_boxes(*_base_and_drol(name, base_name), frames, first_box)


@pytest.mark.parametrize("name, base_name", BASES)
def test_lambda_zero_with_the_online_subnet_running_leaves_the_base_boxes(name, base_name):
    # The classifier runs, updates and cuts short-term templates, but lambda 0 and a gain no
    # prediction can reach (normalised gains lie in [-1, 1]) leave every box to the base.
    base, drol = _base_and_drol(name, base_name, **QUICK, template_update=True,
                                template_interval=2, template_score_threshold=0.0,
                                template_score_gain=2.0, update_interval=2)
    frames, first_box = synthetic_frames(count=12)
    _assert_same_boxes(base, drol, frames, first_box)
    assert drol.classifier is not None
    assert drol.short_term_statistics.templates > 0 and drol.short_term_statistics.compared > 0
    assert drol.short_term_statistics.adopted == 0


# ----- fusion order (eq. 5) ----------------------------------------------------------------------

class StubClassifier:
    """Stands in for the fitted classifier: a fixed crop-pixel online map, a normal frame;
    records its inputs."""

    def __init__(self, maps: torch.Tensor):
        self.maps = maps
        self.inputs = []

    def classify(self, features):
        self.inputs.append(features)
        embedded = torch.zeros(features.shape[0], 64, *features.shape[-2:])
        return embedded, torch.zeros(features.shape[0], *features.shape[-2:])

    def score_maps(self, scores, out_size):
        assert self.maps.shape[-1] == out_size
        return self.maps.expand(scores.shape[0], -1, -1)

    def analyse(self, scores, target_size):
        return ScoreAnalysis(state=FrameState.NORMAL, peak_score=float(scores.max()),
                             second_peak_score=0.0, peak_offset=(0.0, 0.0))


def _bump(size: int, centre_xy, sigma: float) -> torch.Tensor:
    grid = torch.arange(size, dtype=torch.float32)
    return torch.exp(-((grid[None, :] - centre_xy[0]) ** 2 + (grid[:, None] - centre_xy[1]) ** 2)
                     / (2 * sigma ** 2))


def _first_frame_searched_again(tracker) -> FrameContext:
    """Initialise on the first test frame and return a frame context searching it again."""
    frames, boxes = _frames(1)
    tracker.init(frames[0], boxes[0])
    image = tracker.image_to_tensor(frames[0])
    frame = FrameContext(image=image, frame_index=1)
    frame.geometry = tracker.search_geometry()
    frame.crops, frame.search_features = tracker.search_frame(image, frame.geometry)
    return frame


def test_fc_chooses_the_scale_from_the_siamese_map_then_fuses_sum_normalised_maps():
    tracker = _fc(template_update=False)
    frame = _first_frame_searched_again(tracker)
    # Siamese: scale 2 peaks highest (above the 0.9745 penalty), at the centre cell.
    siamese = torch.zeros(3, 17, 17)
    siamese[0, 8, 8], siamese[1, 8, 8], siamese[2, 8, 8] = 1.0, 1.0, 1.2
    # Online: a crop-pixel map peaking 24 crop pixels right of the centre (pixel 127).
    online = _bump(255, (151, 127), 6.0)[None]
    tracker.classifier = StubClassifier(online)
    localisation = tracker.locate(siamese, frame)

    scale, row, col = localisation.details["best_index"]
    assert scale == 2
    # The classifier saw the chosen scale's features only.
    (features,) = tracker.classifier.inputs
    torch.testing.assert_close(features, frame.search_features[2:3])
    # By hand: chosen scale's response normalised to sum 1, the online map resized as a whole
    # onto it (255 -> 272, bicubic) and normalised to sum 1, mixed with lambda 0.8, then the
    # window (0.15).
    response = sum_normalise(tracker.upsample(siamese)[2])
    resampled = cubic_resize(online, 272)[0]
    fused = response * 0.2 + sum_normalise(resampled) * 0.8
    window = torch.as_tensor(windows.hanning_window(272, normalise=True), dtype=torch.float32)
    final = fused * 0.85 + window * 0.15
    assert (row, col) == divmod(int(torch.argmax(final)), 272)
    assert col > 136     # the online peak pulled the box to the right of the Siamese peak
    # The score stays the Siamese probability at the chosen position.
    assert localisation.score == pytest.approx(
        float(torch.sigmoid(tracker.upsample(siamese)[2, row, col])), abs=1e-6)


def test_rpn_fuses_after_the_penalty_and_takes_the_size_rate_from_the_siamese_score():
    tracker = _rpn_alexnet(template_update=False)
    frame = _first_frame_searched_again(tracker)
    anchors, size = tracker.anchor_num, 21
    # Foreground logits: anchor 0 (aspect 0.33, strongly penalised for the square target) scores
    # high at the centre, anchor 2 (aspect 1) a little lower one cell left of it.
    foreground = torch.full((anchors, size, size), -6.0)
    foreground[0, 10, 10], foreground[2, 10, 9] = 4.0, 2.5
    cls = torch.cat([torch.zeros(anchors, size, size), foreground])[None]
    loc = torch.zeros(1, 4 * anchors, size, size)
    frame.head_output = RPNOutput(cls, loc)
    score = tracker.score_map(frame.head_output, frame)
    # A crop-pixel online map (287 x 287, resized as a whole onto the 21 x 21 grid, 287 / 21
    # pixels a cell): its peak under the centre cell (10, 10), a lower one under (10, 9).
    cell = 287 / 21
    online = (_bump(287, (10.5 * cell, 10.5 * cell), 5.0)
              + 0.8 * _bump(287, (9.5 * cell, 10.5 * cell), 5.0))[None]
    tracker.classifier = StubClassifier(online)
    localisation = tracker.locate(score, frame)

    predicted = torch.as_tensor(np.asarray(tracker.decode(loc, size)),
                                dtype=torch.float32).reshape(anchors, size, size, 4)
    target = tracker.size / frame.geometry.image_pixels_per_crop_pixel()
    penalty = windows.siamrpn_penalty(predicted[..., 2], predicted[..., 3], float(target[0]),
                                      float(target[1]), tracker.config.penalty_k)
    normalised = min_max_normalise(antialiased_bicubic_resize(online, size))
    window = torch.as_tensor(windows.hanning_window(size), dtype=torch.float32)
    reference = (penalty * score * 0.2 + 0.8 * normalised) * 0.7 + window * 0.3
    fused_first = (score * 0.2 + 0.8 * normalised) * penalty * 0.7 + window * 0.3
    best = int(torch.argmax(reference))
    anchor, rest = divmod(best, size * size)
    assert localisation.details["best_index"] == (anchor, *divmod(rest, size))
    # Penalising the fused map instead would pick another anchor: the order matters here.
    assert int(torch.argmax(fused_first)) != best
    flat = (anchor, *divmod(rest, size))
    assert localisation.details["lr"] == pytest.approx(
        float(penalty[flat] * score[flat]) * tracker.config.lr, rel=1e-6)


# ----- short-term template (eqs. 6-7) ------------------------------------------------------------

def test_fc_tracks_updates_memory_and_picks_a_short_term_template():
    # tau_c = 0 lets every frame qualify, T = 2 re-cuts z_s every second frame.
    tracker = _fc(template_interval=2, template_score_threshold=0.0, update_interval=2)
    recorder = Recorder(tracker)
    frames, boxes = _frames(5)
    tracker.init(frames[0], boxes[0])
    initial_memory = len(tracker.classifier.memory)
    # identity, flip, 2 rotations, 1 blur, 1 shift, 2 dropout copies
    assert initial_memory == 1 + 1 + 2 + 1 + 1 + 2
    filter_before = tracker.classifier.filter_weight.clone()
    for frame in frames[1:]:
        result = tracker.track(frame)
        assert np.all(np.isfinite(result.box)) and 0.0 <= result.score <= 1.0
    online = recorder.frames[0].extras["drol"]
    assert online.scores.shape == (1, 255, 255)        # the chosen scale, one value a crop pixel
    assert online.embedded.shape == (1, 64, 22, 22)
    assert initial_memory < len(tracker.classifier.memory) <= initial_memory + 4
    assert not torch.equal(filter_before, tracker.classifier.filter_weight)
    assert tracker.short_term_template is not None
    assert tracker.short_term_template.shape == (1, 256, 6, 6)
    assert tracker.short_term_statistics.templates == 2


@pytest.mark.parametrize("build", [_fc, _rpn_alexnet])
def test_short_term_template_adopted_when_eq7_allows_and_not_otherwise(build):
    frames, boxes = _frames(4)
    # Gain thresholds no gain can miss / reach: only the rule decides, whatever the untrained
    # networks score.
    for gain, expected in ((-1e9, True), (1e9, False)):
        tracker = build(template_update=True, template_interval=1, template_score_threshold=0.0,
                        template_iou_threshold=0.0, template_score_gain=gain)
        recorder = Recorder(tracker)
        tracker.init(frames[0], boxes[0])
        for frame in frames[1:]:
            tracker.track(frame)
        adopted = [f.extras["drol"].short_term_adopted for f in recorder.frames]
        # Frame 1 has no z_s yet; from then on the rule decides at every comparison.
        assert adopted[0] is False
        statistics = tracker.short_term_statistics
        assert statistics.compared >= 1
        assert statistics.adopted == (statistics.compared if expected else 0)
        assert sum(adopted) == statistics.adopted


def test_hard_negative_frames_do_not_supply_the_short_term_template():
    tracker = _fc(template_interval=1, template_score_threshold=0.0, online_update=False)
    frames, boxes = _frames(4)
    tracker.init(frames[0], boxes[0])
    states = iter([FrameState.HARD_NEGATIVE, FrameState.HARD_NEGATIVE, FrameState.NORMAL])
    tracker.classifier.analyse = lambda scores, size: ScoreAnalysis(
        state=next(states), peak_score=0.99, second_peak_score=0.9, peak_offset=(0.0, 0.0))
    tracker.track(frames[1])
    tracker.track(frames[2])
    assert tracker.short_term_template is None
    tracker.track(frames[3])
    assert tracker.short_term_template is not None


def test_ablation_switches_freeze_the_filter_and_the_template():
    frames, boxes = _frames(4)
    tracker = _fc(online_update=False, template_update=False, template_interval=1,
                  template_score_threshold=0.0)
    tracker.init(frames[0], boxes[0])
    filter_before = tracker.classifier.filter_weight.clone()
    memory_before = len(tracker.classifier.memory)
    for frame in frames[1:]:
        tracker.track(frame)
    assert torch.equal(filter_before, tracker.classifier.filter_weight)
    assert len(tracker.classifier.memory) == memory_before
    assert tracker.short_term_template is None


def test_lost_frames_add_nothing_to_the_memory():
    # No score exceeds recover_threshold 1, so a tracker put in LOST stays there, searching the
    # widened 511 crop.
    tracker = _fc(recover_threshold=1.0, update_interval=1)
    recorder = Recorder(tracker)
    frames, boxes = _frames(2)
    tracker.init(frames[0], boxes[0])
    tracker.state = TrackState.LOST
    memory_before = len(tracker.classifier.memory)
    filter_before = tracker.classifier.filter_weight.clone()
    for frame in frames[1:]:
        assert tracker.track(frame).state is TrackState.LOST
    assert recorder.frames[0].geometry.out_size == 511
    assert len(tracker.classifier.memory) == memory_before
    assert torch.equal(filter_before, tracker.classifier.filter_weight)


# ----- classifier on tracker features ------------------------------------------------------------

def test_first_frame_classifier_peaks_on_the_target():
    tracker = _fc()
    frames, boxes = _frames(1)
    tracker.init(frames[0], boxes[0])
    image = tracker.image_to_tensor(frames[0])
    _, features = tracker.search_frame(image, tracker.search_geometry())
    _, scores = tracker.classifier.classify(features[1:2])
    assert scores.shape == (1, 22, 22)
    maps = tracker.classifier.score_maps(scores, 255)
    analysis = tracker.classifier.analyse(maps[0], (30.0, 30.0))
    # Within two cells (255 / 22 crop pixels each) of the centre after the short test fit.
    assert max(abs(v) for v in analysis.peak_offset) <= 2 * 255 / 22
    assert analysis.state is not FrameState.NOT_FOUND


def test_rpn_alexnet_fuses_one_online_map_for_every_anchor_and_tracks():
    tracker = _rpn_alexnet(lost_threshold=0.0, recover_threshold=0.0)
    recorder = Recorder(tracker)
    frames, boxes = _frames(3)
    tracker.init(frames[0], boxes[0])
    for frame in frames[1:]:
        result = tracker.track(frame)
        assert np.all(np.isfinite(result.box))
    frame = recorder.frames[-1]
    assert frame.score_map.shape == frame.raw_score_map.shape == (5, 21, 21)
    assert frame.extras["drol"].scores.shape == (1, 287, 287)


def test_rpn_r50_reads_the_mean_of_its_three_layers():
    config = drol_config("drol_rpn_r50_l234", init_gn_iter=1, init_cg_iter=2, rotations_deg=(),
                         blur_sigmas=(), relative_shifts=(), dropout_samples=1,
                         lost_threshold=0.0, recover_threshold=0.0)
    tracker = DROLRPNTracker(config)
    recorder = Recorder(tracker)
    frames, boxes = _frames(2)
    tracker.init(frames[0], boxes[0])
    tracker.track(frames[1])
    frame = recorder.frames[0]
    assert frame.extras["drol"].scores.shape == (1, 255, 255)
    assert frame.extras["drol"].embedded.shape[-1] == 31
    assert frame.score_map.shape == (5, 25, 25)
    layers = list(frame.search_features)
    torch.testing.assert_close(tracker.classifier_features(frame.search_features),
                               sum(layers) / 3)


@pytest.mark.shared_data
def test_first_frame_fit_on_a_real_aerial_frame(uav_dev):
    frames, first_box = real_frames(uav_dev, "car16_1", count=2)
    tracker = _fc()
    tracker.init(frames[0], tuple(float(v) for v in first_box))
    image = tracker.image_to_tensor(frames[0])
    _, features = tracker.search_frame(image, tracker.search_geometry())
    _, scores = tracker.classifier.classify(features[1:2])
    analysis = tracker.classifier.analyse(tracker.classifier.score_maps(scores, 255)[0],
                                          (20.0, 20.0))
    assert max(abs(v) for v in analysis.peak_offset) <= 2 * 255 / 22


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("build", [_fc, _rpn_alexnet])
def test_drol_runs_on_cuda(build):
    frames, boxes = _frames(3)
    tracker = build(update_interval=1)
    tracker = type(tracker)(tracker.config, device="cuda")
    tracker.init(frames[0], boxes[0])
    for frame in frames[1:]:
        assert np.all(np.isfinite(tracker.track(frame).box))
    assert tracker.classifier.filter_weight.is_cuda
    assert tracker.classifier.memory.features.is_cuda


# ----- the authors' classifier state, drift damping and seeding ----------------------------------

def _analysis(state):
    return ScoreAnalysis(state=state, peak_score=0.9, second_peak_score=0.0,
                         peak_offset=(0.0, 0.0))


def test_classifier_position_follows_found_targets_and_labels_in_image_pixels():
    tracker = _rpn_alexnet(update_interval=100)
    frames, boxes = _frames(4)
    tracker.init(frames[0], boxes[0])
    state = tracker.classifier_state
    np.testing.assert_array_equal(state.position, tracker.center)
    labels = []
    original_update = tracker.classifier.update
    tracker.classifier.update = lambda embedded, analysis, offset: (
        labels.append(offset), original_update(embedded, analysis, offset))[1]
    states = iter([FrameState.NORMAL, FrameState.NOT_FOUND, FrameState.NORMAL])
    tracker.classifier.analyse = lambda scores, size: _analysis(next(states))
    tracker.track(frames[1])
    position_after_found = tracker.center - 0.5       # read back from the result box
    np.testing.assert_allclose(state.position, position_after_found)
    tracker.track(frames[2])                           # not found: the position stays
    np.testing.assert_allclose(state.position, position_after_found)
    tracker.track(frames[3])
    # Label centre: (new position - rounded old position) image pixels x H / instance size.
    expected = (tracker.center - 0.5 - np.round(position_after_found)) * 26 / 287
    assert labels[-1] == pytest.approx(tuple(expected))
    assert labels[1] == (0.0, 0.0)                     # the not-found frame stores nothing


def test_short_term_drift_damps_the_move_after_eight_frames_without_a_target():
    tracker = _rpn_alexnet(short_term_drift=True)  # their OTB configs' switch
    frames, boxes = _frames(1)
    tracker.init(frames[0], boxes[0])
    frame = _first_frame_searched_again(tracker)
    start = frame.geometry.center
    proposal = Localisation(center=start + np.array([8.0, -4.0]), size=np.array([20.0, 30.0]),
                            score=0.9)
    tracker.classifier_state.not_found_run = 7
    assert tracker.damp_drift(proposal, frame) is proposal
    tracker.classifier_state.not_found_run = 8
    damped = tracker.damp_drift(proposal, frame)
    np.testing.assert_allclose(damped.center, start + np.array([2.0, -1.0]))
    np.testing.assert_array_equal(damped.size, proposal.size)
    # DROL-FC's config has no drift damping.
    fc = _fc()
    fc.init(frames[0], boxes[0])
    fc.classifier_state.not_found_run = 20
    assert fc.damp_drift(proposal, frame) is proposal


def test_not_found_frames_are_counted_once_per_frame():
    tracker = _rpn_alexnet()
    frames, boxes = _frames(5)
    tracker.init(frames[0], boxes[0])
    states = iter([FrameState.NOT_FOUND, FrameState.NOT_FOUND, FrameState.NORMAL,
                   FrameState.NOT_FOUND])
    tracker.classifier.analyse = lambda scores, size: _analysis(next(states))
    runs = []
    for frame in frames[1:]:
        tracker.track(frame)
        runs.append(tracker.classifier_state.not_found_run)
    assert runs == [1, 2, 0, 1]


def test_first_frame_model_is_seeded_per_sequence():
    frames, boxes = _frames(1)
    tracker = _fc()                # one network: a second tracker would draw other weights
    filters = []
    for seed in (12345, 12345, 7):
        tracker.config = dataclasses.replace(tracker.config, seed=seed)
        tracker.init(frames[0], boxes[0])
        filters.append(tracker.classifier.filter_weight.clone())
    assert torch.equal(filters[0], filters[1])
    assert not torch.equal(filters[0], filters[2])
