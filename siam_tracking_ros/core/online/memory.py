"""Weighted training-sample memory of the online classifier.

DROL adds every accepted frame to the training set of the filter "with a maximal batch size of 250
by replacing the oldest one" (section 4.1). Sample weights gamma_j (the residual weights of
eq. (1)) follow the ATOM-style base DROL builds on: a new sample gets weight `learning_rate`, the
older ones decay by (1 - learning_rate), and the first-frame samples together never fall below a
minimum share. The first-frame (augmented) samples are kept for the whole sequence, as in that
base; the oldest tracking sample is the one replaced once the memory is full.
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

    def add(self, feature: torch.Tensor, label: torch.Tensor, learning_rate: float) -> int:
        """Store one sample with weight `learning_rate`; returns the slot it went to."""
        if not 0.0 < learning_rate <= 1.0:
            raise ValueError(f"learning_rate must be in (0, 1], got {learning_rate}")
        slot = self._free_or_oldest_slot()
        # Older samples decay by (1 - lr); the slot being replaced drops out first.
        self._weights[slot] = 0.0
        self._weights[:self._count] *= 1.0 - learning_rate
        self._features[slot] = feature
        self._labels[slot] = label
        self._weights[slot] = learning_rate
        self._insertion_order[slot] = self._inserted
        self._inserted += 1
        self._count = max(self._count, slot + 1)
        self._normalise_weights()
        return slot

    def _free_or_oldest_slot(self) -> int:
        if self._count < self.capacity:
            return self._count
        replaceable = self._insertion_order[self._num_initial:self._count]
        if replaceable.numel() == 0:
            raise ValueError("the memory holds only first-frame samples and cannot take more")
        return self._num_initial + int(torch.argmin(replaceable))

    def _normalise_weights(self) -> None:
        weights = self._weights[:self._count]
        weights /= weights.sum()
        initial_share = float(weights[:self._num_initial].sum())
        if self._num_initial and initial_share < self.initial_minimum_weight:
            later = weights[self._num_initial:]
            later *= (1.0 - self.initial_minimum_weight) / later.sum()
            weights[:self._num_initial] = self.initial_minimum_weight / self._num_initial
