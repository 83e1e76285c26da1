"""DSiam / DSiamM: layer features, transforms in the tracker, fusion maps, update rules, clips."""
import dataclasses
import warnings

import numpy as np
import pytest
import torch

from siam_tracking_ros.core.models.alexnet import SiamFCAlexNet
from siam_tracking_ros.core.registry import build_tracker, default_config
from siam_tracking_ros.core.trackers.base import FrameContext
from siam_tracking_ros.core.trackers.dsiam import (
    AdaptationState,
    DSiamClip,
    DSiamConfig,
    DSiamTracker,
    DynamicSiamese,
    alexnet_layer_features,
    clip_loss,
    clip_responses,
    highlight_region,
)

torch.set_num_threads(1)


def build(name: str, **overrides) -> DSiamTracker:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no shipped weights: random A-Net is fine here
        torch.manual_seed(0)
        return build_tracker(name, device="cpu", **overrides)


def textured_image(seed: int = 0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    image = generator.integers(0, 60, size=(200, 240, 3), dtype=np.uint8)
    image[80:120, 100:150] = generator.integers(150, 255, size=(40, 50, 3), dtype=np.uint8)
    return image


@pytest.fixture(scope="module")
def dsiam_m():
    tracker = build("dsiam_m")
    tracker.init(textured_image(), (100, 80, 50, 40))
    return tracker


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


def test_registered_variants_and_official_constants():
    single, multi = default_config("dsiam"), default_config("dsiam_m")
    assert single.layers == ("conv5",) and multi.layers == ("conv4", "conv5")
    assert (multi.variation_rate, multi.suppression_rate) == (0.49, 0.29)
    assert (multi.variation_regulariser, multi.suppression_regulariser) == (1e-5, 10.0)
    assert (multi.scale_lr, multi.min_search_ratio, multi.max_search_ratio) == (0.58, 0.2, 5.0)
    assert multi.failure_search_growth == 1.1


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
    with pytest.raises(ValueError, match="must include conv5"):
        DynamicSiamese(("conv4",), 17, 1e-5, 10.0)


def test_tracker_features_and_response_shapes(dsiam_m):
    template = dsiam_m.initial_template_features
    assert template["conv4"].shape == (1, 384, 8, 8)
    assert template["conv5"].shape == (1, 256, 6, 6)
    result = dsiam_m.track(textured_image())
    assert result.box.shape == (4,)
    geometry = dsiam_m.search_geometry()
    with torch.inference_mode():
        image = dsiam_m.image_to_tensor(textured_image())
        crops, search = dsiam_m.search_frame(image, geometry)
        template = dsiam_m.transform_template_features(dsiam_m.template_features)
        response = dsiam_m.run_head(template, search)
    assert search["conv4"].shape == (3, 384, 24, 24) and search["conv5"].shape == (3, 256, 22, 22)
    assert response.shape == (3, 1, 17, 17)


def test_variation_maps_the_first_template_onto_the_latest_target():
    tracker = build("dsiam")
    image = textured_image()
    tracker.init(image, (100, 80, 50, 40))
    with torch.inference_mode():
        image_tensor = tracker.image_to_tensor(image)
        moved = tracker.compute_template(image_tensor, np.array([96.0, 84.0, 50.0, 40.0]))
        tracker.set_adaptation(AdaptationState())  # transforms off: the next frame is the first
        tracker.adapt(image_tensor, moved)
        transformed = tracker.transform_template_features(tracker.initial_template_features)
    # eq. (6) with lambda_v = 1e-5: V * f(O_1) reproduces f(O_t), up to the few frequencies at
    # which some channel of f(O_1) carries (almost) no energy and so cannot be regressed.
    error = (transformed["conv5"] - moved["conv5"]).norm() / moved["conv5"].norm()
    unchanged = (tracker.initial_template_features["conv5"] - moved["conv5"]).norm()
    assert float(error) < 0.02
    assert float(unchanged / moved["conv5"].norm()) > 10 * float(error)


def test_transforms_switched_off_reproduce_siamfc(dsiam_m):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        siamfc = build_tracker("siamfc_alexnet", device="cpu")
    siamfc.model.load_state_dict(dsiam_m.model.appearance.state_dict())
    crops = torch.rand(3, 3, 255, 255) * 255
    saved = dsiam_m.adaptation
    dsiam_m.set_adaptation(AdaptationState())
    with torch.inference_mode():
        expected = siamfc.run_head(siamfc.extract_features(crops[:1, :, :127, :127]),
                                   siamfc.extract_features(crops))
        features = dsiam_m.extract_features(crops)
        template = dsiam_m.extract_features(crops[:1, :, :127, :127])
        actual = dsiam_m.run_head(dsiam_m.transform_template_features(template),
                                  dsiam_m.transform_search_features(features))
    dsiam_m.set_adaptation(saved)
    # DSiamM starts with conv4's fusion map at zero, so without transforms it is SiamFC.
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def frame_with_peak(tracker: DSiamTracker, peak: float) -> FrameContext:
    image = tracker.image_to_tensor(textured_image())
    frame = FrameContext(image=image, frame_index=1)
    frame.raw_score_map = torch.full((3, 17, 17), peak - 1.0)
    frame.raw_score_map[1, 8, 8] = peak
    return frame


def test_failure_switches_transforms_off_and_widens_the_search():
    tracker = build("dsiam")
    tracker.init(textured_image(), (100, 80, 50, 40))
    assert tracker.adaptation.active
    side = tracker.search_geometry().side
    with torch.inference_mode():
        tracker.on_tracked(None, frame_with_peak(tracker, -0.5))
    assert not tracker.adaptation.active and not tracker.variation_transforms
    assert tracker.search_geometry().side == pytest.approx(1.1 * side)
    with torch.inference_mode():
        tracker.on_tracked(None, frame_with_peak(tracker, -0.5))
    assert tracker.search_geometry().side == pytest.approx(1.21 * side)
    with torch.inference_mode():
        tracker.on_tracked(None, frame_with_peak(tracker, 0.5))  # success: peak > 0
    assert tracker.adaptation.active and set(tracker.suppression_transforms) == {"conv5"}
    assert tracker.search_geometry().side == pytest.approx(side)


def test_search_side_is_clamped_to_five_times_the_initial():
    tracker = build("dsiam")
    tracker.init(textured_image(), (100, 80, 50, 40))
    initial = tracker.initial_search_side
    tracker.search_widening = 100.0
    assert tracker.search_geometry().side == pytest.approx(5.0 * initial)
    tracker.search_widening = 1.0
    tracker.size = tracker.size / 50.0
    assert tracker.search_geometry().side == pytest.approx(0.2 * initial)


def test_statistics_blend_with_the_official_rates():
    tracker = build("dsiam")
    image = textured_image()
    tracker.init(image, (100, 80, 50, 40))
    first = tracker.adaptation.layers["conv5"]
    with torch.inference_mode():
        image_tensor = tracker.image_to_tensor(image)
        tracker.center = tracker.center + 6.0
        target = tracker.compute_template(image_tensor, tracker.box)
        tracker.set_adaptation(AdaptationState())  # off: the observation is taken as it is
        tracker.adapt(image_tensor, target)
        newest = tracker.adaptation.layers["conv5"]
        tracker.set_adaptation(AdaptationState({"conv5": first}))
        tracker.adapt(image_tensor, target)
    blended = tracker.adaptation.layers["conv5"]
    torch.testing.assert_close(blended.variation.cross,
                               first.variation.blend(newest.variation, 0.49).cross)
    torch.testing.assert_close(blended.suppression.energy,
                               first.suppression.blend(newest.suppression, 0.29).energy)
    assert not torch.allclose(blended.variation.cross, newest.variation.cross)


def test_highlight_region_keeps_the_centre_and_fades_the_border():
    regions = torch.full((2, 3, 31, 31), 200.0)
    highlighted = highlight_region(regions, torch.tensor([[10.0, 6.0], [4.0, 4.0]]), 0.5)
    assert float(highlighted[0, 0, 15, 15]) == pytest.approx(200.0)
    assert float(highlighted[0, 0, 15, 20]) == pytest.approx(200.0 * np.exp(-0.5))  # 1 sigma
    assert float(highlighted[1, 0, 0, 0]) < 1e-6
    with pytest.raises(ValueError, match="one \\(w, h\\) target size per region"):
        highlight_region(regions, torch.ones(3, 2), 0.5)


def small_clip(steps: int = 2) -> DSiamClip:
    generator = torch.Generator().manual_seed(2)

    def crops(*shape):
        return torch.rand(*shape, generator=generator) * 255

    # 159 search crops give 5x5 responses: small enough for a unit test.
    return DSiamClip(first_targets=crops(1, 3, 127, 127), targets=crops(1, steps, 3, 127, 127),
                     regions=crops(1, steps, 3, 159, 159),
                     region_target_sizes=torch.full((1, steps, 2), 40.0),
                     searches=crops(1, steps, 3, 159, 159))


def test_clip_forward_trains_fusion_maps_and_lambdas():
    torch.manual_seed(3)
    network = build("dsiam_m").model.appearance
    network.requires_grad_(False)
    dynamic = DynamicSiamese(("conv4", "conv5"), 5, 1e-2, 10.0)
    clip = small_clip()
    labels = -torch.ones(1, clip.steps, 5, 5)
    labels[:, :, 2, 2] = 1.0
    responses = clip_responses(network, dynamic, clip, 0.49, 0.29, 0.5)
    assert responses.shape == (1, 2, 1, 5, 5)
    loss = clip_loss(responses, labels)
    loss.backward()
    for parameter in dynamic.trainable_parameters():
        assert parameter.grad is not None and bool(torch.isfinite(parameter.grad).all())
    assert float(dynamic.other_fusion_maps.grad.abs().sum()) > 0
    optimiser = torch.optim.SGD(dynamic.trainable_parameters(), lr=1.0)
    optimiser.step()
    with torch.no_grad():
        after = clip_loss(clip_responses(network, dynamic, clip, 0.49, 0.29, 0.5), labels)
    assert float(after) < float(loss.detach())


def test_clip_loss_is_equation_ten():
    responses = torch.tensor([[[[[2.0, -1.0]]]]])
    labels = torch.tensor([[[[1.0, -1.0]]]])
    expected = (np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-1.0))) / 2
    assert float(clip_loss(responses, labels)) == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"\+1 \(target\) and -1"):
        clip_loss(responses, torch.tensor([[[[1.0, 0.0]]]]))


def test_clip_fields_must_agree():
    clip = small_clip()
    with pytest.raises(ValueError, match="clip field 'searches'"):
        dataclasses.replace(clip, searches=clip.searches[:, :1])


def test_invalid_configs_are_rejected():
    with pytest.raises(ValueError, match="lost_instance_size == instance_size"):
        DSiamTracker(DSiamConfig(lost_instance_size=511))
    with pytest.raises(ValueError, match="variation_rate"):
        DSiamTracker(DSiamConfig(variation_rate=0.0))
    with pytest.raises(ValueError, match="search ratio bounds"):
        DSiamTracker(DSiamConfig(max_search_ratio=0.5))
    with pytest.raises(ValueError, match="needs a DSiamConfig"):
        DSiamTracker(default_config("siamfc_alexnet"))
