"""CLNet: number-free latent feature, delta shapes, zero start, the first-frame adjustment, and
the tracker without adjustment (zero delta, or switched off) being SiamRPN++ box for box."""
import dataclasses

import numpy as np
import pytest
import torch

from siam_tracking_ros.core.models.clnet import (CLNetModules, CompactLatentNetwork,
                                                 HiddenMapRecorder, set_statistics)
from siam_tracking_ros.core.models.heads import SingleLayerRPN, check_param_deltas
from siam_tracking_ros.core.registry import (WEIGHTS_DIR, build_tracker, build_untrained,
                                             default_config)
from siam_tracking_ros.core.anchors import IGNORED, NEGATIVE, POSITIVE
from siam_tracking_ros.core.trackers.clnet import (CLNET_PREFIX, branch_kind,
                                                   mine_diverse_negatives,
                                                   positions_from_anchor_labels)
from siam_tracking_ros.train.checkpointing import load_initial_weights, reset_parameters

from base_equivalence import real_frames, synthetic_frames, tracked_boxes

torch.set_num_threads(1)
BASE_WEIGHTS = WEIGHTS_DIR / 'siamrpn_alexnet.pth'


def small_network(use_negatives: bool) -> CompactLatentNetwork:
    torch.manual_seed(0)
    network = CompactLatentNetwork(16, 8, {'head.3.weight': (10, 16, 1, 1), 'head.3.bias': (10,)},
                                   use_negatives=use_negatives)
    return network.eval()


def test_latent_does_not_depend_on_how_many_samples_there_are():
    network = small_network(use_negatives=True)
    hidden = torch.randn(1, 16, 5, 5)
    positive = torch.zeros(1, 5, 5, dtype=torch.bool)
    positive[0, 2, 1:4] = True
    negative = ~positive
    with torch.no_grad():
        once = network.latent(hidden, positive, negative)
        twice = network.latent(hidden.repeat(2, 1, 1, 1), positive.repeat(2, 1, 1),
                               negative.repeat(2, 1, 1))
    assert once.shape == (4 * 8,)
    torch.testing.assert_close(once, twice)
    # The sets matter: a different positive set gives a different latent.
    moved = positive.roll(2, dims=1)
    with torch.no_grad():
        assert not torch.allclose(once, network.latent(hidden, moved, ~moved))


def test_statistics_are_mean_and_population_std():
    vectors = torch.tensor([[1.0, 2.0], [3.0, 2.0]])
    mean, std = set_statistics(vectors)
    torch.testing.assert_close(mean, torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(std, torch.tensor([1.0, 0.0]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='at least one'):
        set_statistics(torch.zeros(0, 2))


def test_loc_branch_uses_positives_only_and_deltas_are_bounded():
    network = small_network(use_negatives=False)
    positive = torch.ones(1, 3, 3, dtype=torch.bool)
    with torch.no_grad():
        deltas = network(torch.randn(1, 16, 3, 3), positive)
        latent = network.latent(torch.randn(1, 16, 3, 3), positive, None)
    assert latent.shape == (2 * 8,)
    assert deltas['head.3.weight'].shape == (10, 16, 1, 1) and deltas['head.3.bias'].shape == (10,)
    assert all(delta.abs().max() <= 1 for delta in deltas.values())  # tanh output


def give_predictors_weights(clnet: CLNetModules) -> None:
    """Non-zero last FCs, as after training (they start at zero)."""
    with torch.no_grad():
        for network in clnet.networks.values():
            torch.nn.init.normal_(network.predict[-2].weight, std=0.01)


def test_deltas_have_the_shapes_of_the_head_layers_they_adjust():
    head = SingleLayerRPN(anchor_num=5, in_channels=8, hidden=8).eval()
    clnet = CLNetModules(head).eval()
    give_predictors_weights(clnet)
    template, search = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 10, 10)
    with HiddenMapRecorder(head) as recorder, torch.no_grad():
        cls, loc = head([template], [search])
    assert set(recorder.maps) == {'cls', 'loc'}
    assert recorder.maps['cls'].shape == (1, 8, 7, 7)
    positive = torch.zeros(1, 7, 7, dtype=torch.bool)
    positive[0, 3, 3] = True
    with torch.no_grad():
        deltas = clnet(recorder.maps, positive, ~positive)
        adjusted_cls, _ = head([template], [search], deltas)
    parameters = dict(head.named_parameters())
    assert set(deltas) == {'cls.head.3.weight', 'cls.head.3.bias', 'loc.head.3.weight',
                           'loc.head.3.bias'}
    for name, delta in deltas.items():
        assert delta.shape == parameters[name].shape
    check_param_deltas(head, deltas)
    assert adjusted_cls.shape == cls.shape and not torch.allclose(adjusted_cls, cls)


def test_positions_from_anchor_labels():
    positive = torch.zeros(2, 2, 2, dtype=torch.bool)  # (A, H, W)
    negative = torch.ones(2, 2, 2, dtype=torch.bool)
    positive[1, 0, 0] = True
    negative[:, 0, 0] = False
    negative[0, 1, 1] = False  # one negative anchor left there: still a negative position
    pos, neg = positions_from_anchor_labels(positive, negative)
    assert pos.tolist() == [[True, False], [False, False]]
    assert neg.tolist() == [[False, True], [True, True]]


def test_diverse_negatives_are_the_highest_scoring_unused_ones():
    labels = torch.tensor([[POSITIVE, NEGATIVE, IGNORED, IGNORED, IGNORED, IGNORED]])
    candidates = torch.tensor([[False, True, True, True, True, False]])
    logits = torch.zeros(1, 2, 1, 6)
    logits[0, 1, 0] = torch.tensor([5.0, 4.0, 1.0, 3.0, 2.0, 9.0])  # foreground scores
    mined = mine_diverse_negatives(logits, labels, candidates, count=2)
    # Anchors 3 and 4 win among the unused candidates; 5 is no candidate (IoU >= 0.3).
    assert mined.tolist() == [[POSITIVE, NEGATIVE, IGNORED, NEGATIVE, NEGATIVE, IGNORED]]


def first_frame_inputs(tracker, box=(100, 80, 30, 24)):
    """The anchors' IoU with ``box`` and the base head's cls map on a random first frame."""
    image = np.random.default_rng(0).integers(0, 255, size=(200, 240, 3), dtype=np.uint8)
    tracker.init(image, box)
    geometry = tracker.search_geometry()
    _, search_features = tracker.search_frame(image, geometry)
    with torch.no_grad():
        base_cls, _ = tracker.model(tracker.template_features, search_features)
    return tracker.anchor_overlaps(geometry, np.asarray(box, dtype=np.float64)), base_cls


def test_first_frame_sets_are_sampled_as_in_training_with_the_mined_negatives():
    torch.manual_seed(0)
    tracker = build_untrained('clnet_alexnet', device='cpu')
    overlaps, base_cls = first_frame_inputs(tracker)
    positive, negative = tracker.first_frame_sets(overlaps, base_cls)
    every_positive, every_negative = positions_from_anchor_labels(overlaps > 0.6, overlaps < 0.3)
    assert positive.any() and negative.any()
    assert not (positive & ~every_positive).any() and not (negative & ~every_negative).any()
    # At most 16 positive + 48 drawn + 16 mined negative anchors: far fewer negative positions
    # than the crop's (nearly all of the map is below 0.3 IoU).
    assert int(negative.sum()) <= 64 < int(every_negative.sum())
    # The unused negative the base head scores highest is in the set (section 3.4).
    foreground = torch.softmax(base_cls.view(1, 2, -1), dim=1)[0, 1]
    candidates = torch.as_tensor((overlaps < 0.3).reshape(-1))
    hardest = int(torch.where(candidates, foreground, torch.tensor(-1.0)).argmax())
    _, row, col = np.unravel_index(hardest, overlaps.shape)
    assert negative[0, row, col]
    again = tracker.first_frame_sets(overlaps, base_cls)
    assert torch.equal(again[0], positive) and torch.equal(again[1], negative)  # seeded


def test_first_frame_sets_unsampled_take_every_anchor_past_each_threshold():
    torch.manual_seed(0)
    tracker = build_untrained('clnet_alexnet', device='cpu', sample_first_frame_sets=False)
    overlaps, base_cls = first_frame_inputs(tracker)
    positive, negative = tracker.first_frame_sets(overlaps, base_cls)
    every_positive, every_negative = positions_from_anchor_labels(overlaps > 0.6, overlaps < 0.3)
    assert torch.equal(positive[0], every_positive) and torch.equal(negative[0], every_negative)


def test_tracker_adjusts_its_head_once_at_the_first_frame():
    torch.manual_seed(0)
    tracker = build_untrained('clnet_alexnet', device='cpu')
    give_predictors_weights(tracker.model.clnet)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(200, 240, 3), dtype=np.uint8)
    tracker.init(image, (100, 80, 30, 24))
    deltas = tracker.head_param_deltas
    head_parameters = dict(tracker.model.rpn_head.named_parameters())
    assert set(deltas) == {'cls.head.3.weight', 'cls.head.3.bias', 'loc.head.3.weight',
                           'loc.head.3.bias'}
    for name, delta in deltas.items():
        assert delta.shape == head_parameters[name].shape
        assert delta.abs().max() > 0
    result = tracker.track(image)
    assert tracker.head_param_deltas is deltas  # not recomputed while tracking
    assert result.box.shape == (4,)


@pytest.mark.parametrize('branches', [('cls',), ('loc',)])
def test_one_branch_alone_takes_only_its_own_delta(branches):
    image = np.random.default_rng(0).integers(0, 255, size=(200, 240, 3), dtype=np.uint8)
    both = {}
    for adjusted in (('cls', 'loc'), branches):
        torch.manual_seed(0)
        tracker = build_untrained('clnet_alexnet', device='cpu', adjusted_branches=adjusted)
        give_predictors_weights(tracker.model.clnet)
        tracker.init(image, (100, 80, 30, 24))
        both[adjusted] = tracker.head_param_deltas
    kept = both[branches]
    assert set(kept) == {f'{branches[0]}.head.3.weight', f'{branches[0]}.head.3.bias'}
    for name, delta in kept.items():  # the same delta as with both branches adjusted
        assert torch.equal(delta, both[('cls', 'loc')][name])


@pytest.mark.parametrize('branches', [(), ('cls', 'mask')])
def test_adjusted_branches_must_name_cls_or_loc(branches):
    with pytest.raises(ValueError, match='adjusted_branches'):
        build_untrained('clnet_alexnet', device='cpu', adjusted_branches=branches)


def test_branch_kind_of_head_parameter_names():
    assert branch_kind('cls.head.3.weight') == 'cls'
    assert branch_kind('rpn3.loc.head.3.bias') == 'loc'
    with pytest.raises(ValueError, match='no single'):
        branch_kind('neck.weight')


@pytest.mark.parametrize('name, base', [('clnet_alexnet', 'siamrpn_alexnet'),
                                        ('clnet_r50_l234', 'siamrpn_r50_l234')])
def test_variants_track_with_their_base_constants(name, base):
    config, base_config = default_config(name), default_config(base)
    for field in dataclasses.fields(base_config):
        assert getattr(config, field.name) == getattr(base_config, field.name), field.name
    if name == 'clnet_alexnet':  # the AlexNet base's own constants, not the ResNet-50 UAV ones
        assert (config.penalty_k, config.window_influence, config.lr) == (0.16, 0.40, 0.30)
    assert (config.positive_iou, config.negative_iou, config.adjust_head) == (0.6, 0.3, True)


def test_untrained_network_predicts_exactly_zero_delta():
    torch.manual_seed(0)
    tracker = build_untrained('clnet_alexnet', device='cpu')
    # Training re-initialises every layer (reset_parameters): the zero start must survive that.
    reset_parameters(tracker.model)
    image = np.random.default_rng(1).integers(0, 255, size=(200, 240, 3), dtype=np.uint8)
    tracker.init(image, (100, 80, 30, 24))
    assert tracker.head_param_deltas is not None
    for delta in tracker.head_param_deltas.values():
        assert torch.count_nonzero(delta) == 0
    # The layers before the zero FC are not zero: the network can learn from this start.
    network = tracker.model.clnet.networks['cls']
    assert network.predict[0].weight.abs().sum() > 0
    assert network.predict[-2].weight.abs().sum() == 0


def test_first_frame_without_a_positive_anchor_leaves_the_head_alone():
    torch.manual_seed(0)
    tracker = build_untrained('clnet_alexnet', device='cpu')
    image = np.random.default_rng(2).integers(0, 255, size=(200, 240, 3), dtype=np.uint8)
    # A 60 x 6 box: elongated past every anchor ratio (1/3 .. 3), so no IoU exceeds 0.6.
    box = np.array([80.0, 100.0, 60.0, 6.0])
    tracker.init(image, box)
    geometry = tracker.search_geometry()
    assert not (tracker.anchor_overlaps(geometry, box) > 0.6).any()
    assert tracker.head_param_deltas is None  # plain SiamRPN++ for this sequence
    tracker.init(image, (100, 80, 30, 24))  # a box the anchors fit: adjusted again
    assert tracker.head_param_deltas is not None


def base_and_zero_delta_clnet():
    """siamrpn_alexnet and an untrained CLNet (zero delta) on the same base weights."""
    base = build_tracker('siamrpn_alexnet', weights=BASE_WEIGHTS, device='cpu')
    clnet = build_untrained('clnet_alexnet', device='cpu')
    load_initial_weights(clnet.model, BASE_WEIGHTS, (CLNET_PREFIX,))
    clnet.place_model()
    return base, clnet


def base_and_clnet_with_adjustment_off():
    """The shipped CLNet with ``adjust_head`` off and siamrpn_alexnet on the base it holds."""
    clnet = build_tracker('clnet_alexnet', device='cpu', adjust_head=False)
    base = build_untrained('siamrpn_alexnet', device='cpu')
    base.model.load_state_dict({key: value for key, value in clnet.model.state_dict().items()
                                if not key.startswith(CLNET_PREFIX)})
    base.place_model()
    return base, clnet


def assert_clnet_is_its_base(pair, frames, first_box, computes_delta: bool):
    base, clnet = pair
    expected = tracked_boxes(base, frames, first_box)
    actual = tracked_boxes(clnet, frames, first_box)
    assert (clnet.head_param_deltas is not None) == computes_delta
    np.testing.assert_array_equal(actual, expected)
    assert np.ptp(expected[:, 0]) > 1.0  # the box moved: the comparison covers real tracking


# (how the pair is made, whether CLNet computes a delta): a zero delta added to the head, and no
# delta at all.
WITHOUT_ADJUSTMENT = [pytest.param(base_and_zero_delta_clnet, True, id='zero-delta'),
                      pytest.param(base_and_clnet_with_adjustment_off, False, id='adjust-off')]


@pytest.mark.shared_data
@pytest.mark.parametrize('make_pair, computes_delta', WITHOUT_ADJUSTMENT)
def test_without_adjustment_is_the_base_box_for_box_on_a_real_sequence(uav_dev, make_pair,
                                                                       computes_delta):
    frames, first_box = real_frames(uav_dev, 'building5')
    assert_clnet_is_its_base(make_pair(), frames, first_box, computes_delta)


@pytest.mark.parametrize('make_pair, computes_delta', WITHOUT_ADJUSTMENT)
def test_without_adjustment_is_the_base_box_for_box_on_a_synthetic_sequence(make_pair,
                                                                            computes_delta):
    frames, first_box = synthetic_frames()
    assert_clnet_is_its_base(make_pair(), frames, first_box, computes_delta)
