"""DROL trackers: configs, hooks (fusion, short-term template, classifier update), devices.

The networks are randomly initialised (no weights ship with the repository's tests), so these
tests check what DROL does around the Siamese base, not tracking accuracy; accuracy is measured
with `siamtrack eval`.
"""

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from siam_tracking_ros.core.online.classifier import FrameState
from siam_tracking_ros.core.registry import default_config
from siam_tracking_ros.core.trackers.base import TrackState
from siam_tracking_ros.core.trackers.drol import (DROLFCConfig, DROLFCTracker, DROLRPNConfig,
                                                  DROLRPNTracker, DROLSettings)
from siam_tracking_ros.core.trackers.siamfc import SiamFCConfig
from siam_tracking_ros.core.trackers.siamrpn import SiamRPNConfig

UAV_DEV = Path(__file__).resolve().parents[2] / ".." / "shared" / "uav_dev"

# Few solver iterations and augmentations keep the CPU tests short; the defaults are checked
# separately against the reference constants.
QUICK = dict(init_gn_iter=2, init_cg_iter=6, rotations_deg=(10, -10), blur_sigmas=((2, 0.2),),
             relative_shifts=((0.6, 0.6),), dropout_samples=2)


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


def _fc(**overrides):
    return DROLFCTracker(dataclasses.replace(default_config("drol_fc"), **{**QUICK, **overrides}))


def _rpn_alexnet(**overrides):
    config = dataclasses.replace(default_config("drol_rpn_alexnet"), **{**QUICK, **overrides})
    return DROLRPNTracker(config)


class Recorder:
    """Wraps on_tracked to keep each frame's DROL view."""

    def __init__(self, tracker):
        self.frames = []
        original = tracker.on_tracked

        def on_tracked(result, frame):
            self.frames.append(frame)
            original(result, frame)

        tracker.on_tracked = on_tracked


def test_registered_configs_carry_base_constants_and_paper_settings():
    fc = default_config("drol_fc")
    assert isinstance(fc, DROLFCConfig)
    base_fc = default_config("siamfc_alexnet")
    for field in dataclasses.fields(SiamFCConfig):
        assert getattr(fc, field.name) == getattr(base_fc, field.name)
    assert (fc.fusion_weight, fc.template_score_gain) == (0.8, 0.1)
    for name, layer in (("drol_rpn_alexnet", -1), ("drol_rpn_r50_l234", 1)):
        config = default_config(name)
        base = default_config(name.replace("drol_rpn", "siamrpn"))
        for field in dataclasses.fields(SiamRPNConfig):
            assert getattr(config, field.name) == getattr(base, field.name)
        assert (config.fusion_weight, config.template_score_gain) == (0.8, 0.5)
        assert config.classifier_layer == layer
    for config in (fc, default_config("drol_rpn_alexnet")):
        assert (config.template_interval, config.template_score_threshold,
                config.template_iou_threshold) == (5, 0.75, 0.6)
        assert (config.memory_size, config.filter_regularisation, config.compressed_channels,
                config.filter_size, config.num_samples) == (250, 0.1, 64, 4, 30)


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
    assert online.scores.shape == (3, 23, 23)          # 3 scales, 22 x 22 conv5 + 1
    assert online.embedded.shape == (3, 64, 22, 22)
    stored = [f for f in recorder.frames if tracker.state is TrackState.TRACKING]
    assert initial_memory < len(tracker.classifier.memory) <= initial_memory + len(stored)
    assert not torch.equal(filter_before, tracker.classifier.filter_weight)
    assert tracker.short_term_template is not None
    assert tracker.short_term_template.shape == (1, 256, 6, 6)


def test_short_term_template_adopted_when_eq7_allows_and_not_otherwise():
    frames, boxes = _frames(4)
    always = _fc(template_interval=1, template_score_threshold=0.0, template_iou_threshold=0.0,
                 template_score_gain=-1.0)
    never = _fc(template_interval=1, template_score_threshold=0.0, template_iou_threshold=0.0,
                template_score_gain=1.0)
    for tracker, expected in ((always, True), (never, False)):
        recorder = Recorder(tracker)
        tracker.init(frames[0], boxes[0])
        for frame in frames[1:]:
            tracker.track(frame)
        adopted = [f.extras["drol"].short_term_adopted for f in recorder.frames]
        # Frame 1 has no z_s yet; from frame 2 on the rule decides.
        assert adopted[0] is False
        assert all(flag is expected for flag in adopted[1:])


def test_fusion_weight_one_makes_the_online_map_decide_and_fusion_off_keeps_the_siamese_map():
    frames, boxes = _frames(2)
    online_only = _fc(fusion_weight=1.0)
    recorder = Recorder(online_only)
    online_only.init(frames[0], boxes[0])
    online_only.track(frames[1])
    frame = recorder.frames[0]
    online = frame.extras["drol"].scores[:, 3:20, 3:20]     # the 17 x 17 cells under the response
    expected = (online - online.min()) / (online.max() - online.min())
    assert torch.allclose(torch.sigmoid(frame.score_map), expected, atol=1e-4)

    siamese_only = _fc(fusion=False)
    recorder = Recorder(siamese_only)
    siamese_only.init(frames[0], boxes[0])
    siamese_only.track(frames[1])
    frame = recorder.frames[0]
    assert torch.equal(frame.score_map, frame.raw_score_map)


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


def test_first_frame_classifier_peaks_on_the_target():
    tracker = _fc()
    frames, boxes = _frames(1)
    tracker.init(frames[0], boxes[0])
    image = tracker.image_to_tensor(frames[0])
    _, features = tracker.search_frame(image, tracker.search_geometry())
    _, scores = tracker.classifier.classify(features)
    centre_scale = scores[1]
    analysis = tracker.classifier.analyse(centre_scale, (3.0, 3.0))
    assert max(abs(v) for v in analysis.peak_offset) <= 1.0
    assert analysis.state is not FrameState.NOT_FOUND


def test_rpn_alexnet_fuses_per_anchor_and_tracks():
    tracker = _rpn_alexnet(lost_threshold=0.0, recover_threshold=0.0)
    recorder = Recorder(tracker)
    frames, boxes = _frames(3)
    tracker.init(frames[0], boxes[0])
    for frame in frames[1:]:
        result = tracker.track(frame)
        assert np.all(np.isfinite(result.box))
    frame = recorder.frames[-1]
    assert frame.score_map.shape == frame.raw_score_map.shape == (5, 21, 21)
    assert frame.extras["drol"].scores.shape == (1, 27, 27)
    # The online part is the same for every anchor: differences between anchors are Siamese.
    siamese_gap = frame.raw_score_map[0] - frame.raw_score_map[1]
    fused_gap = frame.score_map[0] - frame.score_map[1]
    assert torch.allclose(fused_gap, 0.2 * siamese_gap, atol=1e-5)


def test_rpn_r50_reads_layer3_and_interpolates_half_cells():
    config = dataclasses.replace(default_config("drol_rpn_r50_l234"), init_gn_iter=1,
                                 init_cg_iter=2, rotations_deg=(), blur_sigmas=(),
                                 relative_shifts=(), dropout_samples=1, lost_threshold=0.0,
                                 recover_threshold=0.0)
    tracker = DROLRPNTracker(config)
    recorder = Recorder(tracker)
    frames, boxes = _frames(2)
    tracker.init(frames[0], boxes[0])
    tracker.track(frames[1])
    frame = recorder.frames[0]
    assert frame.extras["drol"].scores.shape == (1, 32, 32)
    assert frame.score_map.shape == (5, 25, 25)
    assert torch.equal(tracker.classifier_features(frame.search_features),
                       frame.search_features[1])


@pytest.mark.skipif(not UAV_DEV.is_dir(), reason="needs the development set at ../shared/uav_dev")
def test_first_frame_fit_on_a_real_aerial_frame():
    sequence = UAV_DEV / "data_seq" / "car16_1"
    annotation = UAV_DEV / "anno" / "car16_1.txt"
    if not sequence.is_dir() or not annotation.is_file():
        pytest.skip("car16_1 is missing from ../shared/uav_dev")
    first = cv2.imread(str(sorted(sequence.glob("*.jpg"))[0]))
    x, y, w, h = (float(v) for v in annotation.read_text().splitlines()[0].split(","))
    tracker = _fc()
    tracker.init(first, (x - 1.0, y - 1.0, w, h))          # 1-based annotation -> 0-based
    image = tracker.image_to_tensor(first)
    _, features = tracker.search_frame(image, tracker.search_geometry())
    _, scores = tracker.classifier.classify(features)
    analysis = tracker.classifier.analyse(scores[1], (2.0, 2.0))
    assert max(abs(v) for v in analysis.peak_offset) <= 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
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
