"""Training CLNet's compact latent network with diverse sample mining (section 3.4).

* The base SiamRPN++ stays frozen (BN on running statistics); only ``model.clnet`` trains.
* Every batch holds pairs of one sequence: the latent feature pools the positive and negative
  hidden vectors of all of them (sequence statistics), and one delta adjusts the head for the
  whole batch.
* Samples per pair: SiamRPN++'s IoU rule, at most 16 positives of 64, plus the 16 unused negatives
  (IoU < 0.3, not drawn) to which the frozen base gives the highest foreground score (the
  "diverse samples"): 80 samples per pair.
* Loss: softmax cross-entropy + 1.2 x smooth-L1 on the adjusted maps (eq. 8).
"""

from __future__ import annotations

import numpy as np
import torch

from siam_tracking_ros.core.models.clnet import HiddenMapRecorder
from siam_tracking_ros.core.trackers.clnet import (CLNET_PREFIX, mine_diverse_negatives,
                                                   positions_from_anchor_labels)
from siam_tracking_ros.train.augment import AugmentConfig, CropConfig
from siam_tracking_ros.train.losses import NEGATIVE, POSITIVE, iou_with_box
from siam_tracking_ros.train.pairs import PairSamplingConfig
from siam_tracking_ros.train.recipes import (RecipeConfig, SiamRPNRecipe, freeze_batch_norm,
                                             register_recipe, set_trainable)

class CLNetRecipe(SiamRPNRecipe):
    """Trains ``model.clnet`` on a frozen SiamRPN++ base."""

    one_sequence_per_batch = True
    new_prefixes = (CLNET_PREFIX,)
    needs_init = True

    def __init__(self, tracker_name: str, base_size: int = 0):
        super().__init__(
            tracker_name, CropConfig(corner_rule='pysot'), AugmentConfig(),
            # Every pair shows the sequence's target: the sets need positives from each pair.
            PairSamplingConfig(negative_pair_probability=0.0),
            # Section 4.1: warm-up 0.001 -> 0.005, then exponential decay to 0.0005.
            RecipeConfig(lr=0.005, final_lr_ratio=0.1, weight_decay=1e-4, warmup_fraction=0.25),
            base_size=base_size)

    def targets(self, crops, pair, rng):
        targets = super().targets(crops, pair, rng)
        overlap = iou_with_box(self.anchors, crops.search_box)
        targets['negative_candidates'] = overlap < self.anchor_config.negative_iou
        targets['best_anchor'] = np.int64(np.argmax(overlap))
        return targets

    def prepare(self, tracker):
        model = tracker.model
        set_trainable(model, False)
        set_trainable(model.clnet, True)
        model.train()
        freeze_batch_norm(model)
        return list(model.clnet.parameters())

    def latent_sets(self, labels: torch.Tensor, best_anchor: torch.Tensor,
                    score_shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Positive / negative position masks ``(B, H, W)`` from the sampled anchor labels.

        As in the reference, the sets pool the positive anchors of every pair of the batch, and a
        pair without one contributes none. Only a batch with no positive anchor at all (which the
        tracker would not adjust) takes each pair's best-overlapping anchor instead, so that the
        step still trains the network.
        """
        positive = labels == POSITIVE
        if not positive.any():
            positive[torch.arange(labels.shape[0], device=labels.device), best_anchor] = True
        negative = labels == NEGATIVE
        shape = (labels.shape[0], *score_shape)
        return positions_from_anchor_labels(positive.view(shape), negative.view(shape))

    def loss(self, tracker, batch):
        template, search = self.model_inputs(tracker, batch)
        model = tracker.model
        with torch.no_grad():
            template_features = model.features(template)
            search_features = model.features(search)
            with HiddenMapRecorder(model.rpn_head) as recorder:
                base_cls, _ = model(template_features, search_features)
        labels = mine_diverse_negatives(base_cls, batch['labels'], batch['negative_candidates'])
        score_shape = (base_cls.shape[1] // 2, *base_cls.shape[-2:])
        positive, negative = self.latent_sets(labels, batch['best_anchor'], score_shape)
        deltas = model.clnet(recorder.maps, positive, negative)
        cls, loc = model(template_features, search_features, deltas)
        return self.rpn_loss(cls, loc, {**batch, 'labels': labels}, tracker.device)


register_recipe('clnet_alexnet', CLNetRecipe)
register_recipe('clnet_r50_l234', lambda name: CLNetRecipe(name, base_size=8))
