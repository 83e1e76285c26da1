"""Sample memory: capacity, oldest-first replacement, weights."""

import pytest
import torch

from siam_tracking_ros.core.online.memory import SampleMemory


def _memory(capacity=5, minimum=0.25):
    return SampleMemory(capacity, (1,), (1,), torch.device("cpu"), initial_minimum_weight=minimum)


def _value(i):
    return torch.tensor([float(i)])


def test_memory_never_exceeds_capacity_and_drops_the_oldest_tracking_sample():
    memory = _memory(capacity=5)
    memory.set_initial(torch.tensor([[100.0], [101.0]]), torch.zeros(2, 1))
    for i in range(12):
        memory.add(_value(i), _value(i), learning_rate=0.1)
        assert len(memory) <= 5
    # Initial samples stay; the three newest tracking samples (9, 10, 11) remain.
    assert sorted(memory.features[:, 0].tolist()) == [9.0, 10.0, 11.0, 100.0, 101.0]
    assert memory.features[:2, 0].tolist() == [100.0, 101.0]
    order = memory.insertion_order.tolist()
    assert sorted(order[2:]) == [11, 12, 13]


def test_each_add_replaces_exactly_the_oldest():
    memory = _memory(capacity=3, minimum=0.0)
    memory.set_initial(torch.tensor([[100.0]]), torch.zeros(1, 1))
    slots = [memory.add(_value(i), _value(i), 0.1) for i in range(5)]
    # Slots 1, 2 fill up, then the oldest tracking sample's slot is reused each time.
    assert slots == [1, 2, 1, 2, 1]
    assert memory.features[:, 0].tolist() == [100.0, 4.0, 3.0]


def test_weights_decay_sum_to_one_and_keep_the_initial_share():
    memory = _memory(capacity=50, minimum=0.25)
    memory.set_initial(torch.zeros(4, 1), torch.zeros(4, 1))
    memory.add(_value(0), _value(0), 0.01)
    weights = memory.weights
    assert float(weights.sum()) == pytest.approx(1.0)
    assert float(weights[-1]) == pytest.approx(0.01)
    assert float(weights[0]) == pytest.approx(0.99 / 4)
    for i in range(40):
        memory.add(_value(i), _value(i), 0.5)
    weights = memory.weights
    assert float(weights.sum()) == pytest.approx(1.0)
    assert float(weights[:4].sum()) == pytest.approx(0.25)


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
        memory.add(_value(0), _value(0), 0.0)
