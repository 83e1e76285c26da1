"""CLNet: number-free latent feature, delta shapes, and the tracker's first-frame adjustment."""
import warnings

import numpy as np
import pytest
import torch

from siam_tracking_ros.core.models.clnet import (CLNetModules, CompactLatentNetwork,
                                                 HiddenMapRecorder, set_statistics)
from siam_tracking_ros.core.models.heads import SingleLayerRPN, check_param_deltas
from siam_tracking_ros.core.registry import build_tracker, default_config
from siam_tracking_ros.core.trackers.clnet import positions_from_anchor_labels


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


def test_deltas_have_the_shapes_of_the_head_layers_they_adjust():
    head = SingleLayerRPN(anchor_num=5, in_channels=8, hidden=8).eval()
    clnet = CLNetModules(head).eval()
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


def test_tracker_adjusts_its_head_once_at_the_first_frame():
    config = default_config('clnet_alexnet')
    assert (config.penalty_k, config.window_influence, config.lr) == (0.599, 0.18, 0.751)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # untrained network: only the mechanics are checked
        tracker = build_tracker('clnet_alexnet', device='cpu')
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(200, 240, 3), dtype=np.uint8)
    tracker.init(image, (100, 80, 30, 24))
    deltas = tracker.head_param_deltas
    head_parameters = dict(tracker.model.rpn_head.named_parameters())
    assert set(deltas) == {'cls.head.3.weight', 'cls.head.3.bias', 'loc.head.3.weight',
                           'loc.head.3.bias'}
    for name, delta in deltas.items():
        assert delta.shape == head_parameters[name].shape
    result = tracker.track(image)
    assert tracker.head_param_deltas is deltas  # not recomputed while tracking
    assert result.box.shape == (4,)
