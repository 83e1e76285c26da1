"""SA-Siam: S-Net geometry and weights, channel attention, fusion, the twofold tracker, and
SA-Siam with appearance weight 1 being SiamFC box for box."""
import functools
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from siam_tracking_ros.core.checkpoints import save_checkpoint
from siam_tracking_ros.core.models.siamese import SiamFCNet
from siam_tracking_ros.core.registry import (WEIGHTS_DIR, build_tracker, build_untrained,
                                             default_config)
from siam_tracking_ros.core.trackers.base import FrameContext
from siam_tracking_ros.core.trackers.sa_siam import SASiamConfig, SASiamTracker

from siam_tracking_ros.core.models.semantic import (
    ChannelAttention,
    SemanticAlexNet,
    SemanticBranch,
    centre_crop,
    grid_max_pool,
    load_snet_weights,
)

from base_equivalence import real_frames, synthetic_frames, tracked_boxes

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def branch():
    torch.manual_seed(0)
    return SemanticBranch()


def torchvision_alexnet_state(snet: SemanticAlexNet) -> dict:
    """A state dict in the layout of torchvision's ``alexnet-owt-*.pth`` (features + classifier)."""
    generator = torch.Generator().manual_seed(1)
    state = {key: torch.randn(tensor.shape, generator=generator)
             for key, tensor in snet.state_dict().items()}
    state["classifier.1.weight"] = torch.randn(16, 9, generator=generator)  # shape unchecked
    state["classifier.6.bias"] = torch.randn(1000, generator=generator)
    return state


def test_snet_feature_sizes_match_the_paper(branch):
    crops = torch.rand(1, 3, 255, 255) * 255
    features = branch.snet(crops)
    # Section 4.1: conv4 24x24 and conv5 22x22 for z^s and X (255x255 crops).
    assert features["conv4"].shape[-2:] == (24, 24)
    assert features["conv5"].shape == (1, 256, 22, 22)
    assert branch.exemplar_feature_size("conv4") == 8
    assert branch.exemplar_feature_size("conv5") == 6  # the 6x6 centre of a 22x22 map (3.2)
    assert branch.snet.output_size("conv5", 255) == 22


def test_snet_normalises_imagenet_input_inside(branch):
    # A crop at the ImageNet mean (in 0-255 RGB) is zero after normalisation, so conv1's output
    # is its bias alone.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255.0
    crop = mean.expand(1, 3, 11, 11)
    conv1 = branch.snet.features[0]
    normalised = (crop - branch.snet.mean) / branch.snet.std
    torch.testing.assert_close(normalised, torch.zeros_like(normalised))
    torch.testing.assert_close(conv1(normalised).flatten(), conv1.bias)


def test_snet_loads_torchvision_layout_and_ignores_classifier(tmp_path):
    snet = SemanticAlexNet()
    state = torchvision_alexnet_state(snet)
    path = tmp_path / "alexnet-owt-test.pth"
    torch.save(state, path)
    load_snet_weights(snet, path)
    torch.testing.assert_close(snet.features[8].weight, state["features.8.weight"])
    torch.testing.assert_close(snet.features[10].bias, state["features.10.bias"])


def test_snet_loading_is_strict_about_feature_keys(tmp_path):
    snet = SemanticAlexNet()
    state = torchvision_alexnet_state(snet)
    missing = dict(state)
    del missing["features.8.weight"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(KeyError, match="missing S-Net feature weights.*features.8.weight"):
        load_snet_weights(snet, tmp_path / "missing.pth")
    unexpected = dict(state, **{"features.13.weight": torch.zeros(3)})
    torch.save(unexpected, tmp_path / "unexpected.pth")
    with pytest.raises(KeyError, match="features.13.weight"):
        load_snet_weights(snet, tmp_path / "unexpected.pth")
    wrong_shape = dict(state, **{"features.0.weight": torch.zeros(64, 3, 5, 5)})
    torch.save(wrong_shape, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match="features.0.weight has shape"):
        load_snet_weights(snet, tmp_path / "shape.pth")
    with pytest.raises(FileNotFoundError, match="S-Net weights file not found"):
        load_snet_weights(snet, tmp_path / "absent.pth")


def test_snet_stays_frozen_in_training_mode(branch):
    branch.train()
    assert not branch.snet.training
    assert all(not parameter.requires_grad for parameter in branch.snet.parameters())
    trainable = {id(parameter) for parameter in branch.trainable_parameters()}
    assert not trainable & {id(parameter) for parameter in branch.snet.parameters()}
    fusion_and_attention = [*branch.fusion.parameters(), *branch.attention.parameters()]
    assert {id(parameter) for parameter in fusion_and_attention} <= trainable
    branch.eval()


def test_grid_max_pool_splits_around_the_target_cell():
    features = torch.zeros(1, 1, 22, 22)
    features[0, 0, 10, 10] = 5.0   # inside the centre 6x6 cell (rows/cols 8..13)
    features[0, 0, 0, 21] = 3.0    # top-right cell
    features[0, 0, 14, 7] = 2.0    # bottom-left cell (row 14 is the first of the last band)
    pooled = grid_max_pool(features, 6)[0, 0]
    assert pooled.tolist() == [0.0, 0.0, 3.0, 0.0, 5.0, 0.0, 2.0, 0.0, 0.0]


def test_attention_weights_lie_in_half_to_one_and_a_half():
    torch.manual_seed(2)
    attention = ChannelAttention()
    with torch.no_grad():
        for parameter in attention.parameters():
            parameter.mul_(50.0)  # push the sigmoid to saturation on both sides
    features = torch.randn(2, 64, 22, 22) * 10
    with torch.no_grad():
        weights = attention(features, 6)
    assert weights.shape == (2, 64)
    assert float(weights.min()) >= 0.5 and float(weights.max()) <= 1.5
    assert float(weights.max() - weights.min()) > 0.5  # the range is actually used


def test_attention_mlp_is_shared_across_channels():
    attention = ChannelAttention()
    features = torch.randn(1, 3, 22, 22)
    swapped = features[:, [2, 0, 1]]
    torch.testing.assert_close(attention(swapped, 6), attention(features, 6)[:, [2, 0, 1]])
    assert sum(parameter.numel() for parameter in attention.parameters()) == 9 * 9 + 9 + 9 + 1


def test_centre_crop_takes_the_middle():
    features = torch.arange(22 * 22, dtype=torch.float32).view(1, 1, 22, 22)
    crop = centre_crop(features, 6)
    assert crop.shape == (1, 1, 6, 6)
    assert float(crop[0, 0, 0, 0]) == 8 * 22 + 8
    with pytest.raises(ValueError, match="cannot cut"):
        centre_crop(features, 23)


def test_semantic_response_is_17_by_17_and_attention_scales_kernels(branch):
    generator = torch.Generator().manual_seed(3)
    context = torch.rand(2, 3, 255, 255, generator=generator) * 255
    search = torch.rand(2, 3, 255, 255, generator=generator) * 255
    with torch.no_grad():
        responses = branch(context, search)
        exemplar = branch.exemplar(context)
    assert responses.shape == (2, 1, 17, 17)
    assert exemplar.kernels["conv4"].shape == (2, 128, 8, 8)
    assert exemplar.kernels["conv5"].shape == (2, 128, 6, 6)
    for weights in exemplar.attention.values():
        assert float(weights.min()) >= 0.5 and float(weights.max()) <= 1.5


def test_semantic_branch_trains_its_modules_only(branch):
    generator = torch.Generator().manual_seed(4)
    context = torch.rand(1, 3, 255, 255, generator=generator) * 255
    search = torch.rand(1, 3, 255, 255, generator=generator) * 255
    branch.train()
    branch.zero_grad()
    branch(context, search).sum().backward()
    assert branch.fusion["conv5"].weight.grad is not None
    assert branch.attention["conv4"].mlp[0].weight.grad is not None
    assert branch.response_bias.grad is not None
    assert all(parameter.grad is None for parameter in branch.snet.parameters())
    branch.zero_grad()
    branch.eval()


def test_mismatched_training_pairs_are_rejected(branch):
    with pytest.raises(ValueError, match="pairs must match"):
        branch(torch.zeros(2, 3, 255, 255), torch.zeros(1, 3, 255, 255))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        branch.snet(torch.zeros(3, 255, 255))


# ---------------------------------------------------------------------- tracker
def textured_image(seed: int = 0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    image = generator.integers(0, 60, size=(200, 240, 3), dtype=np.uint8)
    image[80:120, 100:150] = generator.integers(150, 255, size=(40, 50, 3), dtype=np.uint8)
    return image


@functools.lru_cache(maxsize=1)
def anet_only_file() -> Path:
    """A random SiamFC A-Net file: the trackers here start without an S-Net whatever ships."""
    torch.manual_seed(6)
    path = Path(tempfile.mkdtemp()) / "anet.pth"
    return save_checkpoint(path, "siamfc_alexnet", SiamFCNet(out_scale=0.001),
                           default_config("siamfc_alexnet"), {}, colour_order="RGB")


def quiet_tracker(**overrides) -> SASiamTracker:
    torch.manual_seed(5)
    return build_tracker("sa_siam", weights=anet_only_file(), device="cpu", **overrides)


@pytest.fixture(scope="module")
def snet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("snet") / "alexnet-owt-test.pth"
    torch.save(torchvision_alexnet_state(SemanticAlexNet()), path)
    return path


def test_registered_with_the_paper_constants():
    config = default_config("sa_siam")
    assert isinstance(config, SASiamConfig)
    assert config.appearance_weight == 0.3  # lambda, section 4.1
    assert (config.scale_num, config.scale_step, config.scale_lr) == (3, 1.0375, 0.59)
    assert (config.scale_penalty, config.window_influence, config.response_up) == (
        0.9745, 0.176, 16)


def test_random_snet_is_announced_and_a_given_file_is_loaded(snet_file):
    tracker = quiet_tracker()
    with pytest.warns(RuntimeWarning, match="S-Net has random weights"):
        tracker.init(textured_image(), (100, 80, 50, 40))
    loaded = quiet_tracker(snet_weights=str(snet_file))
    expected = torch.load(snet_file, weights_only=True)["features.10.weight"]
    torch.testing.assert_close(loaded.semantic.snet.features[10].weight, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        loaded.init(textured_image(), (100, 80, 50, 40))


def test_attention_is_computed_once_per_sequence(snet_file):
    tracker = quiet_tracker(snet_weights=str(snet_file))
    calls = []
    tracker.semantic.attention["conv5"].register_forward_hook(lambda *args: calls.append(1))
    tracker.init(textured_image(), (100, 80, 50, 40))
    first_weights = tracker.semantic_exemplar.attention["conv5"].clone()
    for _ in range(2):
        tracker.track(textured_image())
    assert len(calls) == 1
    torch.testing.assert_close(tracker.semantic_exemplar.attention["conv5"], first_weights)
    assert float(first_weights.min()) >= 0.5 and float(first_weights.max()) <= 1.5
    assert tracker.semantic_exemplar.kernels["conv5"].shape == (1, 128, 6, 6)


def test_score_map_fuses_both_branches_with_lambda(snet_file):
    tracker = quiet_tracker(snet_weights=str(snet_file))
    tracker.init(textured_image(), (100, 80, 50, 40))
    with torch.no_grad():
        tracker.extension.appearance_bias.fill_(0.25)
        tracker.semantic.response_bias.fill_(-0.5)
    with torch.inference_mode():
        image = tracker.image_to_tensor(textured_image(1))
        frame = FrameContext(image=image, frame_index=1, geometry=tracker.search_geometry())
        frame.crops = tracker.crop_search(image, frame.geometry)
        appearance = tracker.score_map(tracker.run_head(
            tracker.template_features, tracker.extract_features(frame.crops)), frame)
        semantic = tracker.semantic.response(tracker.semantic_exemplar, frame.crops)[:, 0]
        fused = tracker.modify_score_map(appearance, frame)
    assert appearance.shape == semantic.shape == fused.shape == (3, 17, 17)
    # eq. (5): 0.3 (h_a + b_a) + 0.7 h_s, where h_s already carries b_s.
    torch.testing.assert_close(fused, 0.3 * (appearance + 0.25) + 0.7 * semantic)


def test_semantic_branch_sees_rgb_whatever_the_a_net_order():
    tracker = quiet_tracker()
    crops = torch.arange(6.0).view(1, 3, 1, 2)
    assert tracker.colour_order == "RGB"
    assert tracker.rgb(crops) is crops
    tracker.colour_order = "BGR"
    torch.testing.assert_close(tracker.rgb(crops), crops.flip(1))


def test_a_net_files_load_into_the_appearance_branch(tmp_path):
    torch.manual_seed(6)
    a_net = SiamFCNet()
    plain = tmp_path / "siamfc_alexnet_e50.pth"
    torch.save(a_net.state_dict(), plain)  # siamfc-pytorch's plain layout
    tracker = quiet_tracker()
    semantic_before = tracker.semantic.fusion["conv5"].weight.clone()
    metadata = tracker.load_weights(plain)
    assert metadata["colour_order"] == "RGB"
    torch.testing.assert_close(tracker.model.appearance.backbone.conv1[0].weight,
                               a_net.backbone.conv1[0].weight)
    torch.testing.assert_close(tracker.semantic.fusion["conv5"].weight, semantic_before)


def test_full_checkpoints_round_trip_and_bad_files_fail(tmp_path):
    source = quiet_tracker()
    with torch.no_grad():
        source.extension.appearance_bias.fill_(0.125)
        source.semantic.fusion["conv4"].weight.normal_()
    path = save_checkpoint(tmp_path / "sa_siam.pth", "sa_siam", source.model, source.config,
                           {"data": "unit test"}, colour_order="RGB")
    target = quiet_tracker()
    target.load_weights(path)
    assert target.snet_loaded
    assert float(target.extension.appearance_bias.detach()) == 0.125
    torch.testing.assert_close(target.semantic.fusion["conv4"].weight,
                               source.semantic.fusion["conv4"].weight)
    broken = tmp_path / "broken.pth"
    torch.save({"backbone.conv1.0.weight": torch.zeros(3)}, broken)
    with pytest.raises(ValueError, match="does not fit the SiamFC A-Net"):
        target.load_weights(broken)


def test_invalid_lambda_is_rejected():
    with pytest.raises(ValueError, match="appearance_weight"):
        SASiamTracker(SASiamConfig(appearance_weight=1.5))
    with pytest.raises(ValueError, match="needs an SASiamConfig"):
        SASiamTracker(default_config("siamfc_alexnet"))


# ---------------------------------------------------------------------- reduces to SiamFC
def siamfc_and_appearance_only_sa_siam():
    """The shipped SA-Siam with lambda = 1 and siamfc_alexnet on the A-Net it holds."""
    sa_siam = build_tracker("sa_siam", weights=WEIGHTS_DIR / "sa_siam.pth", device="cpu",
                            appearance_weight=1.0)
    siamfc = build_untrained("siamfc_alexnet", device="cpu")
    siamfc.model.load_state_dict(sa_siam.model.appearance.state_dict())
    siamfc.colour_order = sa_siam.colour_order
    siamfc.place_model()
    return siamfc, sa_siam


def assert_sa_siam_is_siamfc(frames, first_box):
    siamfc, sa_siam = siamfc_and_appearance_only_sa_siam()
    assert sa_siam.snet_loaded  # the semantic branch runs and is weighted 0
    assert float(sa_siam.extension.appearance_bias.detach()) == 0.0
    expected = tracked_boxes(siamfc, frames, first_box)
    np.testing.assert_array_equal(tracked_boxes(sa_siam, frames, first_box), expected)
    assert np.ptp(expected[:, 0]) > 1.0  # the box moved: the comparison covers real tracking


@pytest.mark.shared_data
def test_appearance_weight_one_is_siamfc_box_for_box_on_a_real_sequence(uav_dev):
    assert_sa_siam_is_siamfc(*real_frames(uav_dev, "car16_1"))


def test_appearance_weight_one_is_siamfc_box_for_box_on_a_synthetic_sequence():
    assert_sa_siam_is_siamfc(*synthetic_frames())
