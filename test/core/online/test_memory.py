"""Sample memory: capacity, least-weight replacement, the authors' weight rule."""

import pytest
import torch

from siam_tracking_ros.core.online.memory import SampleMemory


def _memory(capacity=5, minimum=0.25):
    return SampleMemory(capacity, (1,), (1,), torch.device("cpu"), initial_minimum_weight=minimum)


def _value(i):
    return torch.tensor([float(i)])


def _authors_weights(weights, previous, num_initial, lr, minimum):
    """The authors' update_sample_weights on a list, for comparison."""
    weights = torch.as_tensor(weights, dtype=torch.float64).clone()
    _, least = torch.min(weights[num_initial:], 0)
    slot = int(least) + num_initial
    if previous is None:
        weights /= 1 - lr
        weights[slot] = lr
    else:
        weights[slot] = weights[previous] / (1 - lr)
    weights /= weights.sum()
    if weights[:num_initial].sum() < minimum:
        weights /= minimum + weights[num_initial:].sum()
        weights[:num_initial] = minimum / num_initial
    return weights, slot


def test_memory_never_exceeds_capacity_and_drops_the_oldest_tracking_sample():
    memory = _memory(capacity=5)
    memory.set_initial(torch.tensor([[100.0], [101.0]]), torch.zeros(2, 1))
    for i in range(12):
        memory.add(_value(i), _value(i), learning_rate=0.1)
        assert len(memory) <= 5
    # Initial samples stay; the three newest tracking samples (9, 10, 11) remain: at one rate the
    # least weight is the oldest.
    assert sorted(memory.features[:, 0].tolist()) == [9.0, 10.0, 11.0, 100.0, 101.0]
    assert memory.features[:2, 0].tolist() == [100.0, 101.0]


def test_the_least_weighted_tracking_sample_is_replaced():
    memory = _memory(capacity=4, minimum=0.0)
    memory.set_initial(torch.tensor([[100.0]]), torch.zeros(1, 1))
    slots = [memory.add(_value(i), _value(i), 0.1) for i in range(3)]
    assert slots == [1, 2, 3]
    # A hard negative at a high rate outweighs the later sample at a low rate: the next
    # replacement takes the oldest low-rate sample (slot 2), not the older heavy one.
    memory.add(_value(3), _value(3), 0.9)          # replaces slot 1, now the heaviest
    assert memory.add(_value(4), _value(4), 0.01) == 2
    assert memory.add(_value(5), _value(5), 0.01) == 3


def test_weights_follow_the_authors_rule():
    capacity, num_initial, minimum = 12, 4, 0.25
    memory = _memory(capacity=capacity, minimum=minimum)
    memory.set_initial(torch.zeros(num_initial, 1), torch.zeros(num_initial, 1))
    expected = [1.0 / num_initial] * num_initial + [0.0] * (capacity - num_initial)
    previous = None
    for i, rate in enumerate([0.01, 0.01, 0.02, 0.01] + [0.3] * 20):
        slot = memory.add(_value(i), _value(i), rate)
        expected, expected_slot = _authors_weights(expected, previous, num_initial, rate, minimum)
        previous = expected_slot
        assert slot == expected_slot
        torch.testing.assert_close(memory._weights.double(), expected, rtol=1e-5, atol=1e-7)
    # The first-frame share is held at the minimum (the authors' rescale leaves the sum off 1).
    assert float(memory.weights[:num_initial].sum()) == pytest.approx(minimum)


def test_bad_memory_use_is_rejected():
    with pytest.raises(ValueError, match="capacity"):
        _memory(capacity=0)
    memory = _memory(capacity=2)
    with pytest.raises(ValueError, match="do not fit"):
        memory.set_initial(torch.zeros(3, 1), torch.zeros(3, 1))
    memory.set_initial(torch.zeros(2, 1), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="only first-frame samples"):
        memory.add(_value(0), _value(0), 0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        memory.add(_value(0), _value(0), 1.5)
    with pytest.raises(ValueError, match="learning_rate"):
        memory.add(_value(0), _value(0), 0.0)
