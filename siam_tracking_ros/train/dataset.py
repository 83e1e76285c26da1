"""A torch ``Dataset`` of augmented training pairs, reproducible whatever the worker count.

Item ``i`` of epoch ``e`` draws everything from a generator seeded with ``(seed, e, i)``, so a
run gives the same pairs with 0 or 16 loader workers and a resumed run continues the same stream.
When the recipe trains from one sequence per batch (CLNet, section 3.4), the track is drawn from
the batch's own seed and every item of the batch takes its pair from that track (a still image
counts as a one-frame sequence: its pairs are differently augmented views of the one object).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from siam_tracking_ros.train.pairs import FramePair, ImageCache, PairSampler

if TYPE_CHECKING:
    from siam_tracking_ros.train.recipes import TrainingRecipe


ITEM_STREAM, BATCH_STREAM = 0, 1


def item_generator(seed: int, epoch: int, index: int,
                   stream: int = ITEM_STREAM) -> np.random.Generator:
    """Generator of item (or, with BATCH_STREAM, batch) ``index`` of ``epoch``."""
    return np.random.default_rng([seed, epoch, stream, index])


class PairDataset(Dataset):
    """``steps * batch_size`` augmented pairs per epoch, made by ``recipe``'s rules."""

    def __init__(self, sampler: PairSampler, recipe: TrainingRecipe, steps: int, batch_size: int,
                 seed: int = 0, cache_bytes: int = 1 << 30):
        if steps < 1 or batch_size < 1:
            raise ValueError(f'steps and batch_size must be positive, got {steps}, {batch_size}')
        self.sampler = sampler
        self.recipe = recipe
        self.steps = steps
        self.batch_size = batch_size
        self.seed = seed
        self.cache = ImageCache(cache_bytes)

    @property
    def items_per_epoch(self) -> int:
        return self.steps * self.batch_size

    def __len__(self) -> int:
        return self.items_per_epoch

    def frame_pair(self, epoch: int, index: int, rng: np.random.Generator) -> FramePair:
        if not self.recipe.one_sequence_per_batch:
            return self.sampler.sample(rng)
        # The batch's track comes from the batch's own generator so all of its items agree on it.
        batch_rng = item_generator(self.seed, epoch, index // self.batch_size, BATCH_STREAM)
        track = self.sampler.sample_track(batch_rng)
        return self.sampler.sample_pair_in_track(track, rng)

    def __getitem__(self, global_index: int) -> dict[str, torch.Tensor]:
        """Item ``global_index = epoch * items_per_epoch + index`` (see :class:`EpochSampler`)."""
        epoch, index = divmod(int(global_index), self.items_per_epoch)
        rng = item_generator(self.seed, epoch, index)
        return self.recipe.make_item(self.frame_pair(epoch, index, rng), self.cache, rng)


class EpochSampler(Sampler):
    """Yields the global indices of one epoch of a :class:`PairDataset`.

    The epoch is chosen in the main process (``set_epoch``), so persistent loader workers, which
    keep their decoded-image caches across epochs, see the right items without being told.
    """

    def __init__(self, dataset: PairDataset):
        self.items = dataset.items_per_epoch
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip_items: int = 0) -> None:
        """Yield epoch ``epoch`` from its item ``skip_items`` on (a run resumed mid-epoch)."""
        if not 0 <= skip_items < self.items:
            raise ValueError(f'skip_items must be in [0, {self.items}), got {skip_items}')
        self.epoch, self.skip = epoch, skip_items

    def __len__(self) -> int:
        return self.items - self.skip

    def __iter__(self):
        return iter(range(self.epoch * self.items + self.skip, (self.epoch + 1) * self.items))
