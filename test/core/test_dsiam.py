"""DSiam / DSiamM: layer features, transform layers in the tracker, weight map, update rules,
fusion maps, clips, and DSiam with both transforms off == SiamFC box for box."""
import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from siam_tracking_ros.core.fourier import learn_transform_layer
from siam_tracking_ros.core.models.alexnet import SiamFCAlexNet
from siam_tracking_ros.core.registry import build_tracker, build_untrained, default_config
from siam_tracking_ros.core.trackers.dsiam import (
    DSiamClip,
    DSiamConfig,
    DSiamTracker,
    DynamicSiamese,
    alexnet_layer_features,
    clip_loss,
    clip_responses,
    highlight_weight_map,
    highlighted_pair,
)
from siam_tracking_ros.train.dsiam_recipe import fit_response_bias

sys.path.insert(0, str(Path(__file__).resolve().parent))
from base_equivalence import real_frames, synthetic_frames, tracked_boxes  # noqa: E402

torch.set_num_threads(1)
BOX = (100.0, 80.0, 50.0, 40.0)


def build(name: str, **overrides) -> DSiamTracker:
    """A random A-Net (enough for the rules tested here) and, unless overridden, no response
    bias: the rules are tested on hand-made score maps around 0."""
    torch.manual_seed(0)
    return build_untrained(name, device="cpu", **{"response_bias": 0.0, **overrides})


def textured_image(seed: int = 0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    image = generator.integers(0, 60, size=(200, 240, 3), dtype=np.uint8)
    image[80:120, 100:150] = generator.integers(150, 255, size=(40, 50, 3), dtype=np.uint8)
    return image


def with_score_maps(tracker: DSiamTracker, maps: list[torch.Tensor]) -> DSiamTracker:
    """Make the next ``track`` calls see these raw score maps ``(3, 17, 17)`` in turn."""
    pending = list(maps)
    tracker.score_map = lambda head_output, frame: pending.pop(0)
    return tracker


def flat_map(value: float) -> torch.Tensor:
    return torch.full((3, 17, 17), value)


SUCCESS, FAILURE = flat_map(1.0), flat_map(-1.0)


# ---------------------------------------------------------------------- building blocks
def test_layer_features_run_the_backbone_stages_in_order():
    torch.manual_seed(1)
    backbone = SiamFCAlexNet().eval()
    crops = torch.rand(1, 3, 255, 255) * 255
    with torch.no_grad():
        features = alexnet_layer_features(backbone, crops, ("conv4", "conv5"))
        torch.testing.assert_close(features["conv5"], backbone(crops))
        exemplar = alexnet_layer_features(backbone, crops[..., :127, :127], ("conv4", "conv5"))
    assert features["conv4"].shape == (1, 384, 24, 24)  # relu4 of a 255 crop
    assert float(features["conv4"].min()) >= 0.0
    assert features["conv5"].shape == (1, 256, 22, 22)
    assert exemplar["conv4"].shape[-2:] == (8, 8) and exemplar["conv5"].shape[-2:] == (6, 6)
    with pytest.raises(ValueError, match="unknown AlexNet layers"):
        alexnet_layer_features(backbone, crops, ("conv6",))


def test_registered_variants_and_reference_constants():
    single, multi = default_config("dsiam"), default_config("dsiam_m")
    assert single.layers == ("conv5",) and multi.layers == ("conv4", "conv5")
    assert (multi.variation_rate, multi.suppression_rate) == (0.49, 0.29)
    assert (multi.variation_regulariser, multi.suppression_regulariser) == (1e-5, 10.0)
    assert (multi.min_search_ratio, multi.max_search_ratio) == (0.2, 5.0)
    assert multi.failure_search_growth == 1.1 and multi.highlight_sigma_factor == 100.0
    assert multi.exits_before_recentre == 2
    # The reference's comment gives 0.59 for SiamFC features: the base's own value.
    assert multi.scale_lr == default_config("siamfc_alexnet").scale_lr == 0.59


def test_weight_map_is_the_whole_crops_hamming_by_hann_window():
    weights = highlight_weight_map(255, 100.0 * 127)
    hamming = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(255) / 254)
    hann = 0.5 * (1 - np.cos(2 * np.pi * np.arange(255) / 254))
    # The reference's Gaussian factor (sigma = 100 x exemplar) is flat to within 1e-4.
    np.testing.assert_allclose(weights.numpy(), np.outer(hamming, hann), rtol=2e-4, atol=1e-7)
    assert float(weights.max()) == pytest.approx(1.0)
    # A narrow Gaussian does matter: sigma 1 on a 5 x 5 map.
    small = highlight_weight_map(5, 1.0).double()
    windows = np.outer(0.54 - 0.46 * np.cos(np.pi * np.arange(5) / 2),
                       0.5 * (1 - np.cos(np.pi * np.arange(5) / 2)))
    offsets = np.arange(5) - 2.0
    expected = windows * np.exp(-0.5 * (offsets[:, None] ** 2 + offsets[None, :] ** 2))
    np.testing.assert_allclose(small.numpy(), expected / expected.max(), atol=1e-6)
    with pytest.raises(ValueError, match="positive size and sigma"):
        highlight_weight_map(5, 0.0)


def test_highlighted_pair_is_the_region_then_the_weighted_region():
    regions = torch.full((2, 3, 9, 9), 200.0)
    pair = highlighted_pair(regions, 1e4)
    assert pair.shape == (4, 3, 9, 9)
    torch.testing.assert_close(pair[:2], regions)
    torch.testing.assert_close(pair[2:], regions * highlight_weight_map(9, 1e4))
    assert float(pair[2, 0, 4, 4]) == pytest.approx(200.0)
    assert float(pair[2, 0, 4, 0]) == 0.0  # hann's ends are zero


def test_fusion_maps_start_on_conv5_and_always_sum_to_one():
    dynamic = DynamicSiamese(("conv4", "conv5"), 17, 1e-5, 10.0)
    maps = dynamic.fusion_maps()
    torch.testing.assert_close(maps["conv5"], torch.ones(17, 17))
    torch.testing.assert_close(maps["conv4"], torch.zeros(17, 17))
    with torch.no_grad():
        dynamic.other_fusion_maps.normal_()
    maps = dynamic.fusion_maps()
    torch.testing.assert_close(maps["conv4"] + maps["conv5"], torch.ones(17, 17))
    responses = {"conv4": torch.randn(3, 1, 17, 17), "conv5": torch.randn(3, 1, 17, 17)}
    expected = maps["conv4"] * responses["conv4"] + maps["conv5"] * responses["conv5"]
    torch.testing.assert_close(dynamic.fuse(responses), expected)  # eq. (9)
    torch.testing.assert_close(dynamic.variation_regulariser, torch.tensor(1e-5))
    single = DynamicSiamese(("conv5",), 17, 1e-5, 10.0)
    assert torch.equal(single.fuse({"conv5": responses["conv5"]}), responses["conv5"])
    with pytest.raises(ValueError, match="must include conv5"):
        DynamicSiamese(("conv4",), 17, 1e-5, 10.0)


def test_tracker_features_and_response_shapes():
    tracker = build("dsiam_m")
    tracker.init(textured_image(), BOX)
    template = tracker.initial_template_features
    assert template["conv4"].shape == (1, 384, 8, 8)
    assert template["conv5"].shape == (1, 256, 6, 6)
    with_score_maps(tracker, [SUCCESS])
    assert tracker.track(textured_image()).box.shape == (4,)
    assert set(tracker.variation) == set(tracker.suppression) == {"conv4", "conv5"}
    with torch.inference_mode():
        image = tracker.image_to_tensor(textured_image())
        _, search = tracker.search_frame(image, tracker.search_geometry())
        template = tracker.transform_template_features(tracker.template_features)
        response = tracker.run_head(template, search)
    assert search["conv4"].shape == (3, 384, 24, 24) and search["conv5"].shape == (3, 256, 22, 22)
    assert template["conv4"].shape == (1, 384, 8, 8)
    assert response.shape == (3, 1, 17, 17)


# ---------------------------------------------------------------------- online update
def test_transforms_stay_off_until_the_first_successful_frame():
    tracker = build("dsiam")
    tracker.init(textured_image(), BOX)
    assert not tracker.variation and not tracker.suppression
    with_score_maps(tracker, [FAILURE, SUCCESS])
    tracker.track(textured_image())
    assert not tracker.variation and not tracker.suppression
    tracker.track(textured_image())
    assert set(tracker.variation) == set(tracker.suppression) == {"conv5"}
    assert tracker.variation["conv5"].rate == 0.49 and tracker.suppression["conv5"].rate == 0.29


def test_transforms_are_learned_afresh_from_the_latest_frame_and_mixed_into_the_features():
    first, second = textured_image(0), textured_image(1)
    tracker = build("dsiam")
    tracker.init(first, BOX)
    with_score_maps(tracker, [SUCCESS, SUCCESS])
    tracker.track(first)
    state = (tracker.center.copy(), tracker.size.copy(), tracker.search_side)
    start_box = tracker.box
    tracker.track(second)
    # A tracker in the same state that saw only the second frame after init learns the same
    # transforms: nothing of the first frame's transforms is kept.
    fresh = build("dsiam")
    fresh.init(first, BOX)
    fresh.center, fresh.size, fresh.search_side = state
    with_score_maps(fresh, [SUCCESS])
    fresh.track(second)
    torch.testing.assert_close(fresh.variation["conv5"].transform.spectrum,
                               tracker.variation["conv5"].transform.spectrum)
    torch.testing.assert_close(fresh.suppression["conv5"].transform.spectrum,
                               tracker.suppression["conv5"].transform.spectrum)
    # V regresses f(O_1) onto the template crop at the new position (size of the frame's start),
    # and the template the head sees is (1 - 0.49) f(O_1) + 0.49 V * (hann . f(O_1)).
    with torch.inference_mode():
        image = tracker.image_to_tensor(second)
        # the flat response keeps the centre, so the crop is where the frame started
        latest = tracker.compute_template(image, start_box)
        first_features = tracker.initial_template_features["conv5"]
        expected = learn_transform_layer(first_features, latest["conv5"],
                                         tracker.extension.variation_regulariser, 0.49)
        torch.testing.assert_close(tracker.variation["conv5"].transform.spectrum,
                                   expected.transform.spectrum)
        applied = tracker.transform_template_features(tracker.template_features)["conv5"]
        torch.testing.assert_close(applied, expected.apply(first_features))
        assert not torch.allclose(applied, first_features)


def test_success_test_reads_the_penalised_upsampled_peak():
    # A plateau just below zero next to a deep drop: the raw maximum is negative, but bicubic
    # upsampling overshoots above zero near the edge, so the frame succeeds.
    overshoot = torch.full((3, 17, 17), -10.0)
    overshoot[:, 6:11, 6:11] = -0.05
    # A lone positive cell: the raw maximum is positive, but no upsampled sample reaches it.
    spike = torch.full((3, 17, 17), -10.0)
    spike[:, 8, 8] = 0.01
    tracker = build("dsiam")
    tracker.init(textured_image(), BOX)
    with_score_maps(tracker, [overshoot, spike])
    tracker.track(textured_image())
    assert tracker.variation and not tracker.failed
    tracker.track(textured_image())
    assert not tracker.variation and tracker.failed


def test_the_response_bias_enters_the_success_test_only():
    assert default_config("dsiam").response_bias < 0.0  # fitted for the shipped SiamFC file
    tracker = build("dsiam", response_bias=-2.0)
    tracker.init(textured_image(), BOX)
    with torch.inference_mode():  # the score map is the head's: localisation stays SiamFC's
        image = tracker.image_to_tensor(textured_image())
        _, search = tracker.search_frame(image, tracker.search_geometry())
        template = tracker.transform_template_features(tracker.template_features)
        unbiased = build("dsiam")
        unbiased.model.load_state_dict(tracker.model.state_dict())
        unbiased.extension.response_bias.zero_()
        torch.testing.assert_close(tracker.run_head(template, search),
                                   unbiased.run_head(template, search))
    above = flat_map(2.5)  # peak 2.5 + bias -2 > 0: success
    with_score_maps(tracker, [SUCCESS, above])
    tracker.track(textured_image())  # peak 1 + bias -2 < 0: a failure
    assert tracker.failed and not tracker.variation
    tracker.track(textured_image())
    assert not tracker.failed and tracker.variation


def test_response_bias_fit_minimises_the_balanced_logistic_loss():
    # One target cell at 3, one background cell at 1: the balanced loss is symmetric about
    # b = -2 (target logit +1, background -1).
    responses = torch.tensor([[[[3.0, 1.0]]]])
    labels = torch.tensor([[[1.0, 0.0]]])
    assert fit_response_bias(responses, labels) == pytest.approx(-2.0, abs=1e-5)


def test_failure_keeps_the_size_widens_the_search_and_recovery_resets_it():
    tracker = build("dsiam")
    tracker.init(textured_image(), BOX)
    side, size = tracker.search_geometry().side, tracker.size.copy()
    smaller = torch.full((3, 17, 17), -5.0)
    smaller[0, 8, 8] = 1.0  # the peak on the smallest scale
    with_score_maps(tracker, [FAILURE, FAILURE, smaller, smaller])
    tracker.track(textured_image())
    assert tracker.failed and not tracker.variation
    np.testing.assert_array_equal(tracker.size, size)
    assert tracker.search_geometry().side == pytest.approx(1.1 * side)
    tracker.track(textured_image())
    assert tracker.search_geometry().side == pytest.approx(1.21 * side)
    tracker.track(textured_image())  # recovery: search side from the size, no size update
    assert not tracker.failed and tracker.variation
    np.testing.assert_array_equal(tracker.size, size)
    assert tracker.search_geometry().side == pytest.approx(side)
    tracker.track(textured_image())  # a normal success damps size and side alike
    change = 0.41 + 0.59 / 1.0375
    np.testing.assert_allclose(tracker.size, size * change)
    assert tracker.search_geometry().side == pytest.approx(side * change)


def test_search_side_is_clamped_to_the_reference_bounds():
    tracker = build("dsiam")
    tracker.init(textured_image(), BOX)
    initial = tracker.search_side
    with_score_maps(tracker, [FAILURE] * 20)
    for _ in range(20):
        tracker.track(textured_image())
    assert tracker.search_geometry().side == pytest.approx(5.0 * initial)
    assert tracker.clamped_side(0.01) == pytest.approx(0.2 * initial)


def test_a_box_leaving_the_image_fails_and_the_second_exit_recentres_it():
    tracker = build("dsiam")
    tracker.init(textured_image(), (170.0, 130.0, 60.0, 60.0))  # corner (230, 190) of 240 x 200
    right, left = torch.full((3, 17, 17), -5.0), torch.full((3, 17, 17), -5.0)
    right[1, 8, 16] = 1.0  # the peak on the right edge of the response
    left[1, 8, 0] = 1.0
    with_score_maps(tracker, [right, left, right])
    first = tracker.track(textured_image())
    assert tracker.failed and not tracker.variation and tracker.exits == 1
    assert first.box[0] + first.box[2] > 240
    back = tracker.track(textured_image())
    assert back.box[0] + back.box[2] <= 239 and tracker.exits == 1 and not tracker.failed
    recentred = tracker.track(textured_image())
    np.testing.assert_allclose(recentred.box[:2] + (recentred.box[2:] - 1) / 2, [119.5, 99.5])
    assert tracker.exits == 0 and tracker.failed


def test_with_both_transforms_off_nothing_of_the_online_update_runs():
    tracker = build("dsiam", variation_rate=0.0, suppression_rate=0.0)
    tracker.init(textured_image(), BOX)
    assert not tracker.adapts
    with_score_maps(tracker, [FAILURE, SUCCESS])
    tracker.track(textured_image())
    tracker.track(textured_image())
    assert not tracker.variation and not tracker.suppression and not tracker.failed
    only_v = build("dsiam", suppression_rate=0.0)
    only_v.init(textured_image(), BOX)
    with_score_maps(only_v, [SUCCESS])
    only_v.track(textured_image())
    assert set(only_v.variation) == {"conv5"} and not only_v.suppression


# ---------------------------------------------------------------------- reduces to SiamFC
def siamfc_and_dsiam(**dsiam_overrides):
    """SiamFC with the shipped weights (random where none ship) and DSiam on the same A-Net."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        siamfc = build_tracker("siamfc_alexnet", device="cpu")
    dsiam = build_untrained("dsiam", device="cpu", **dsiam_overrides)
    dsiam.model.appearance.load_state_dict(siamfc.model.state_dict())
    dsiam.colour_order = siamfc.colour_order
    return siamfc, dsiam


def test_dsiam_without_transforms_is_siamfc_box_for_box_on_a_real_sequence(uav_dev):
    frames, first_box = real_frames(uav_dev, "S0601")
    siamfc, dsiam = siamfc_and_dsiam(variation_rate=0.0, suppression_rate=0.0)
    np.testing.assert_array_equal(tracked_boxes(dsiam, frames, first_box),
                                  tracked_boxes(siamfc, frames, first_box))


def test_dsiam_without_transforms_is_siamfc_box_for_box_on_a_synthetic_sequence():
    frames, first_box = synthetic_frames()
    siamfc, dsiam = siamfc_and_dsiam(variation_rate=0.0, suppression_rate=0.0)
    expected = tracked_boxes(siamfc, frames, first_box)
    np.testing.assert_array_equal(tracked_boxes(dsiam, frames, first_box), expected)
    # and with the transforms on the boxes differ, so the comparison can fail
    _, dsiam_on = siamfc_and_dsiam()
    assert not np.array_equal(tracked_boxes(dsiam_on, frames, first_box), expected)


def test_dsiam_m_with_its_initial_fusion_maps_tracks_as_dsiam():
    # conv4's map starts at zero (section 3.6): without trained maps DSiamM is DSiam.
    single, multi = build("dsiam"), build("dsiam_m")
    multi.model.appearance.load_state_dict(single.model.appearance.state_dict())
    frames = [np.roll(textured_image(), 3 * step, axis=1) for step in range(4)]
    np.testing.assert_array_equal(tracked_boxes(multi, frames, np.array(BOX)),
                                  tracked_boxes(single, frames, np.array(BOX)))


# ---------------------------------------------------------------------- training on clips
def small_clip(steps: int = 2) -> DSiamClip:
    generator = torch.Generator().manual_seed(2)

    def crops(*shape):
        return torch.rand(*shape, generator=generator) * 255

    # 159 search crops give 5x5 responses: small enough for a unit test.
    return DSiamClip(first_targets=crops(1, 3, 127, 127), searches=crops(1, steps, 3, 159, 159),
                     targets=crops(1, steps - 1, 3, 127, 127),
                     regions=crops(1, steps - 1, 3, 159, 159))


def test_clip_forward_trains_fusion_maps_and_lambdas():
    torch.manual_seed(3)
    network = build("dsiam_m").model.appearance
    network.requires_grad_(False)
    dynamic = DynamicSiamese(("conv4", "conv5"), 5, 1e-2, 10.0)
    clip = small_clip(3)
    labels = -torch.ones(1, clip.steps, 5, 5)
    labels[:, :, 2, 2] = 1.0
    responses = clip_responses(network, dynamic, clip, 0.49, 0.29, 12700.0)
    assert responses.shape == (1, 3, 1, 5, 5)
    loss = clip_loss(responses, labels)
    loss.backward()
    for parameter in dynamic.trainable_parameters():
        assert parameter.grad is not None and bool(torch.isfinite(parameter.grad).all())
        assert float(parameter.grad.abs().sum()) > 0
    # the success test's bias is the SiamFC network's, fitted with SiamFC's loss: not trained here
    assert all(parameter is not dynamic.response_bias
               for parameter in dynamic.trainable_parameters())
    optimiser = torch.optim.SGD(dynamic.trainable_parameters(), lr=1.0)
    optimiser.step()
    with torch.no_grad():
        after = clip_loss(clip_responses(network, dynamic, clip, 0.49, 0.29, 12700.0), labels)
    assert float(after) < float(loss.detach())


def test_clip_first_step_scores_without_transforms():
    network = build("dsiam").model.appearance
    dynamic = DynamicSiamese(("conv5",), 5, 1e-5, 10.0)
    clip = small_clip(2)
    with torch.no_grad():
        responses = clip_responses(network, dynamic, clip, 0.49, 0.29, 12700.0)
        plain = network.head(network.backbone(clip.first_targets),
                             network.backbone(clip.searches[:, 0]))
        off = clip_responses(network, dynamic, clip, 0.0, 0.0, 12700.0)
    torch.testing.assert_close(responses[:, 0], plain)
    assert not torch.allclose(responses[:, 1], off[:, 1])


def test_clip_loss_is_equation_ten():
    responses = torch.tensor([[[[[2.0, -1.0]]]]])
    labels = torch.tensor([[[[1.0, -1.0]]]])
    expected = (np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-1.0))) / 2
    assert float(clip_loss(responses, labels)) == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"\+1 \(target\) and -1"):
        clip_loss(responses, torch.tensor([[[[1.0, 0.0]]]]))


def test_clip_fields_must_agree():
    clip = small_clip(3)
    with pytest.raises(ValueError, match="clip field 'targets'"):
        dataclasses.replace(clip, targets=clip.targets[:, :1])


def test_invalid_configs_are_rejected():
    with pytest.raises(ValueError, match="lost_instance_size == instance_size"):
        DSiamTracker(DSiamConfig(lost_instance_size=511))
    with pytest.raises(ValueError, match="variation_rate"):
        DSiamTracker(DSiamConfig(variation_rate=1.5))
    with pytest.raises(ValueError, match="search ratio bounds"):
        DSiamTracker(DSiamConfig(max_search_ratio=0.5))
    with pytest.raises(ValueError, match="exits_before_recentre"):
        DSiamTracker(DSiamConfig(exits_before_recentre=-1))
    with pytest.raises(ValueError, match="needs a DSiamConfig"):
        DSiamTracker(default_config("siamfc_alexnet"))
