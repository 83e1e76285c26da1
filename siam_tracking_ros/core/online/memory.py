"""Weighted training-sample memory of the online classifier.

DROL adds every accepted frame to the training set of the filter "with a maximal batch size of 250
by replacing the oldest one" (section 4.1). Sample weights gamma_j (the residual weights of
eq. (1)) follow the authors' `update_sample_weights` (from the ATOM-style base):
- the slot replaced is the tracking slot of least weight (an empty slot while there is one; then
  the oldest sample, as weights grow with recency, unless a hard negative's doubled rate kept an
  older one heavier);
- the first added sample gets weight `lr` after all weights are divided by (1 - lr); every later
  one gets the previous new sample's weight / (1 - lr), so the weights grow geometrically with
  recency at the rate of the sample;
- the weights are normalised to sum 1, and when the first-frame samples' share falls below the
  minimum, all weights are divided by (minimum + tracking share) and the first-frame samples set
  to minimum / count each (the authors' formula: the sum is then no longer exactly 1).
The first-frame (augmented) samples are kept for the whole sequence.
"""

from __future__ import annotations

import torch


class SampleMemory:
    """Fixed-capacity store of (feature, label, weight) with oldest-first replacement."""

    def __init__(self, capacity: int, feature_shape: tuple[int, ...], label_shape: tuple[int, ...],
                 device: torch.device, dtype: torch.dtype = torch.float32,
                 initial_minimum_weight: float = 0.25):
        if capacity < 1:
            raise ValueError(f"memory capacity must be >= 1, got {capacity}")
        if not 0.0 <= initial_minimum_weight <= 1.0:
            raise ValueError("initial_minimum_weight must be in [0, 1], got "
                             f"{initial_minimum_weight}")
        self.capacity = capacity
        self.initial_minimum_weight = initial_minimum_weight
        # C x H x W feature maps are stored channels_last: the classifier's filter reads the
        # whole memory as one (positions x channels) matrix (`apply_filter`).
        layout = torch.channels_last if len(feature_shape) == 3 else torch.contiguous_format
        self._features = torch.zeros((capacity, *feature_shape), device=device,
                                     dtype=dtype).contiguous(memory_format=layout)
        self._labels = torch.zeros((capacity, *label_shape), device=device, dtype=dtype)
        self._weights = torch.zeros(capacity, device=device, dtype=dtype)
        self._insertion_order = torch.full((capacity,), -1, dtype=torch.long)
        self._count = 0
        self._num_initial = 0
        self._inserted = 0
        self._previous_slot: int | None = None

    def __len__(self) -> int:
        return self._count

    @property
    def num_initial(self) -> int:
        return self._num_initial

    @property
    def features(self) -> torch.Tensor:
        return self._features[:self._count]

    @property
    def labels(self) -> torch.Tensor:
        return self._labels[:self._count]

    @property
    def weights(self) -> torch.Tensor:
        return self._weights[:self._count]

    @property
    def insertion_order(self) -> torch.Tensor:
        """Running insertion number of each stored sample (0 for the first one ever stored)."""
        return self._insertion_order[:self._count]

    def set_initial(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Start the memory with the first-frame samples, equally weighted."""
        count = features.shape[0]
        if count > self.capacity:
            raise ValueError(f"{count} initial samples do not fit a memory of {self.capacity}")
        if labels.shape[0] != count:
            raise ValueError(f"{count} initial features but {labels.shape[0]} labels")
        self._features[:count] = features
        self._labels[:count] = labels
        self._weights.zero_()
        self._weights[:count] = 1.0 / count
        self._insertion_order.fill_(-1)
        self._insertion_order[:count] = torch.arange(count)
        self._count = count
        self._num_initial = count
        self._inserted = count
        self._previous_slot = None

    def add(self, feature: torch.Tensor, label: torch.Tensor, learning_rate: float) -> int:
        """Store one sample at `learning_rate` (the authors' weight rule, see the module
        docstring); returns the slot it went to."""
        if not 0.0 < learning_rate <= 1.0:
            raise ValueError(f"learning_rate must be in (0, 1], got {learning_rate}")
        if self._num_initial >= self.capacity:
            raise ValueError("the memory holds only first-frame samples and cannot take more")
        weights = self._weights
        if learning_rate == 1.0:
            # The authors' rule for a rate of 1: the new sample alone, in slot 0.
            slot = 0
            weights.zero_()
            weights[0] = 1.0
        else:
            _, least = torch.min(weights[self._num_initial:], 0)
            slot = self._num_initial + int(least)
            if self._previous_slot is None:
                weights /= 1.0 - learning_rate
                weights[slot] = learning_rate
            else:
                weights[slot] = weights[self._previous_slot] / (1.0 - learning_rate)
            weights /= weights.sum()
            initial_share = float(weights[:self._num_initial].sum())
            if self._num_initial and initial_share < self.initial_minimum_weight:
                weights /= self.initial_minimum_weight + weights[self._num_initial:].sum()
                weights[:self._num_initial] = self.initial_minimum_weight / self._num_initial
        self._previous_slot = slot
        self._features[slot] = feature
        self._labels[slot] = label
        self._insertion_order[slot] = self._inserted
        self._inserted += 1
        self._count = max(self._count, slot + 1)
        return slot
