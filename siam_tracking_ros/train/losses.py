"""Training targets and losses of the Siamese trackers.

* SiamFC: logistic loss on the response map with balanced positive/negative weights.
* SiamRPN / SiamRPN++: anchor labels from IoU (> 0.6 positive, < 0.3 negative, at most 16
  positives of 64 samples), 2-class cross-entropy and smooth-L1 box regression.

Anchors and boxes here are ``(cx, cy, w, h)`` in search-crop pixels, the frame in which the
core's anchors are laid out; targets are therefore independent of how the anchors were made.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from siam_tracking_ros.core import boxes
from siam_tracking_ros.core.anchors import (IGNORED, MAX_POSITIVES, NEGATIVE, NEGATIVE_IOU,
                                            POSITIVE, POSITIVE_IOU, TOTAL_SAMPLES, keep_at_most,
                                            sample_anchor_labels)


@dataclass(frozen=True)
class AnchorTargetConfig:
    """SiamRPN++ sampling of anchors for one training pair."""

    positive_iou: float = POSITIVE_IOU
    negative_iou: float = NEGATIVE_IOU
    max_positives: int = MAX_POSITIVES
    total_samples: int = TOTAL_SAMPLES
    # Samples of a pair whose search region shows another object: all negative.
    negative_pair_samples: int = 16


@dataclass(frozen=True)
class AnchorTargets:
    labels: np.ndarray   # (N,) int64 in {POSITIVE, NEGATIVE, IGNORED}
    deltas: np.ndarray   # (N, 4) float32 regression targets (dx, dy, dw, dh)
    loc_weights: np.ndarray  # (N,) float32, 1 / n_positive on positives, 0 elsewhere


def iou_with_box(anchors: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of every anchor (N, 4) with one box (4,), both (cx, cy, w, h) pixel-centre."""
    return boxes.iou(boxes.center_size_to_xywh(box), boxes.center_size_to_xywh(anchors))


def encode_deltas(anchors: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Regression targets the RPN decodes with cx = dx*wa + xa, w = exp(dw)*wa."""
    anchors = np.asarray(anchors, dtype=np.float64)
    dx = (box[0] - anchors[:, 0]) / anchors[:, 2]
    dy = (box[1] - anchors[:, 1]) / anchors[:, 3]
    dw = np.log(box[2] / anchors[:, 2])
    dh = np.log(box[3] / anchors[:, 3])
    return np.stack([dx, dy, dw, dh], axis=1).astype(np.float32)


def assign_anchor_targets(anchors: np.ndarray, box: np.ndarray | None,
                          rng: np.random.Generator,
                          config: AnchorTargetConfig = AnchorTargetConfig()) -> AnchorTargets:
    """Label anchors for one pair the way SiamRPN++ samples them.

    ``box`` is the target in the search crop (cx, cy, w, h), or None for a negative pair (the
    search region shows a different object), where only negatives are drawn.
    """
    anchors = np.asarray(anchors, dtype=np.float64)
    if anchors.ndim != 2 or anchors.shape[1] != 4:
        raise ValueError(f'anchors must be an (N, 4) array of cx, cy, w, h, got {anchors.shape}')
    count = len(anchors)
    deltas = np.zeros((count, 4), dtype=np.float32)
    loc_weights = np.zeros(count, dtype=np.float32)
    if box is None:
        labels = np.full(count, IGNORED, dtype=np.int64)
        labels[keep_at_most(np.arange(count), config.negative_pair_samples, rng)] = NEGATIVE
        return AnchorTargets(labels, deltas, loc_weights)
    box = np.asarray(box, dtype=np.float64)
    if box.shape != (4,) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f'target box must be (cx, cy, w, h) with positive size, got {box}')
    labels = sample_anchor_labels(iou_with_box(anchors, box), rng, config.positive_iou,
                                  config.negative_iou, config.max_positives, config.total_samples)
    deltas[:] = encode_deltas(anchors, box)
    positives = labels == POSITIVE
    if positives.any():
        loc_weights[positives] = 1.0 / positives.sum()
    return AnchorTargets(labels, deltas, loc_weights)


def _mean_cross_entropy(log_probs: torch.Tensor, labels: torch.Tensor, value: int) -> torch.Tensor:
    selected = labels == value
    if not bool(selected.any()):
        return log_probs.new_zeros(())
    return -log_probs[selected][:, value].mean()


def rpn_classification_loss(cls_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """2-class cross-entropy, positives and negatives averaged apart and weighted 0.5 each.

    ``cls_logits``: (B, 2K, H, W) with the K background logits first, then the K foreground
    logits (pysot's channel order); ``labels``: (B, K*H*W) ordered (K, H, W).
    """
    batch, channels, height, width = cls_logits.shape
    anchors_per_cell = channels // 2
    logits = cls_logits.view(batch, 2, anchors_per_cell, height, width)
    logits = logits.permute(0, 2, 3, 4, 1).reshape(-1, 2)
    log_probs = F.log_softmax(logits, dim=1)
    flat_labels = labels.reshape(-1)
    return 0.5 * _mean_cross_entropy(log_probs, flat_labels, POSITIVE) + \
        0.5 * _mean_cross_entropy(log_probs, flat_labels, NEGATIVE)


def rpn_regression_loss(loc_output: torch.Tensor, deltas: torch.Tensor,
                        loc_weights: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 on (dx, dy, dw, dh), weighted 1/n_pos on each pair's positives.

    ``loc_output``: (B, 4K, H, W) ordered (4, K); ``deltas``: (B, K*H*W, 4);
    ``loc_weights``: (B, K*H*W).
    """
    batch, channels, height, width = loc_output.shape
    anchors_per_cell = channels // 4
    predicted = loc_output.view(batch, 4, anchors_per_cell, height, width)
    predicted = predicted.permute(0, 2, 3, 4, 1).reshape(batch, -1, 4)
    per_anchor = F.smooth_l1_loss(predicted, deltas, reduction='none').sum(dim=2)
    return (per_anchor * loc_weights).sum() / batch


def siamfc_labels(response_size: int, stride: int, target_offsets: np.ndarray,
                  positive_radius: float = 16.0) -> np.ndarray:
    """SiamFC score labels: 1 within ``positive_radius`` pixels of the target, 0 elsewhere.

    ``target_offsets``: (B, 2) target centre minus search-crop centre, in crop pixels; the label
    disc moves with the target so that shifted crops are labelled where the object is. Distance is
    measured as in SiamFC's reference label maps: |dx| + |dy| in response cells, positive when at
    most ``positive_radius / stride``.
    """
    offsets = np.asarray(target_offsets, dtype=np.float64).reshape(-1, 2) / stride
    cells = np.arange(response_size, dtype=np.float64) - (response_size - 1) / 2.0
    dx = cells[None, None, :] - offsets[:, 0, None, None]
    dy = cells[None, :, None] - offsets[:, 1, None, None]
    distance = np.abs(dx) + np.abs(dy)
    return (distance <= positive_radius / stride).astype(np.float32)


def balanced_logistic_loss(responses: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SiamFC logistic loss, positives and negatives each given half the weight.

    ``responses``: (B, 1, H, W) raw scores; ``labels``: (B, H, W) in {0, 1}.
    """
    responses = responses.reshape(labels.shape)
    positives = labels.sum(dim=(1, 2), keepdim=True).clamp(min=1.0)
    negatives = (1.0 - labels).sum(dim=(1, 2), keepdim=True).clamp(min=1.0)
    weights = labels * 0.5 / positives + (1.0 - labels) * 0.5 / negatives
    losses = F.binary_cross_entropy_with_logits(responses, labels, reduction='none')
    return (losses * weights).sum() / responses.shape[0]
