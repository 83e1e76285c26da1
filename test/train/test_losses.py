"""Anchor targets on hand-made boxes, SiamFC labels and the losses."""
import numpy as np
import pytest
import torch

from siam_tracking_ros.train.losses import (IGNORED, NEGATIVE, POSITIVE, AnchorTargetConfig,
                                            assign_anchor_targets, balanced_logistic_loss,
                                            encode_deltas, iou_with_box, rpn_classification_loss,
                                            siamfc_labels)


def test_anchor_labels_follow_the_iou_thresholds():
    box = np.array([100.0, 100.0, 40.0, 40.0])
    anchors = np.array([
        [100, 100, 40, 40],    # IoU 1
        [104, 100, 40, 40],    # IoU 36/44 = 0.82
        [115, 100, 40, 40],    # IoU 25/55 = 0.45: ignored
        [130, 100, 40, 40],    # IoU 10/70 = 0.14
        [300, 300, 40, 40],    # IoU 0
    ], dtype=np.float64)
    np.testing.assert_allclose(iou_with_box(anchors, box), [1, 36 / 44, 25 / 55, 10 / 70, 0],
                               atol=1e-9)
    targets = assign_anchor_targets(anchors, box, np.random.default_rng(0))
    assert targets.labels.tolist() == [POSITIVE, POSITIVE, IGNORED, NEGATIVE, NEGATIVE]
    np.testing.assert_allclose(targets.loc_weights, [0.5, 0.5, 0, 0, 0])
    np.testing.assert_allclose(targets.deltas[1], [-0.1, 0.0, 0.0, 0.0], atol=1e-7)


def test_at_most_16_positives_of_64_samples():
    rng = np.random.default_rng(0)
    centres = rng.uniform(90, 110, size=(40, 2))
    near = np.concatenate([centres, np.full((40, 2), 50.0)], axis=1)
    far = np.concatenate([rng.uniform(300, 400, size=(200, 2)), np.full((200, 2), 50.0)], axis=1)
    anchors = np.concatenate([near, far])
    targets = assign_anchor_targets(anchors, np.array([100.0, 100.0, 50.0, 50.0]), rng)
    assert (targets.labels == POSITIVE).sum() == 16
    assert (targets.labels >= 0).sum() == 64
    assert targets.loc_weights.sum() == pytest.approx(1.0)


def test_negative_pair_draws_only_negatives():
    anchors = np.tile([100.0, 100.0, 40.0, 40.0], (50, 1))
    targets = assign_anchor_targets(anchors, None, np.random.default_rng(0))
    assert (targets.labels == NEGATIVE).sum() == AnchorTargetConfig().negative_pair_samples
    assert not (targets.labels == POSITIVE).any()


def test_bad_anchor_input_is_explained():
    with pytest.raises(ValueError, match=r'\(N, 4\)'):
        assign_anchor_targets(np.zeros((3, 3)), np.array([1.0, 1, 1, 1]),
                              np.random.default_rng(0))
    with pytest.raises(ValueError, match='positive size'):
        assign_anchor_targets(np.ones((3, 4)), np.array([1.0, 1, 0, 1]),
                              np.random.default_rng(0))


def test_deltas_invert_the_anchor_decoding():
    anchors = np.array([[50.0, 60.0, 32.0, 16.0]])
    box = np.array([58.0, 56.0, 64.0, 12.0])
    dx, dy, dw, dh = encode_deltas(anchors, box)[0]
    decoded = [dx * 32 + 50, dy * 16 + 60, np.exp(dw) * 32, np.exp(dh) * 16]
    np.testing.assert_allclose(decoded, box, rtol=1e-5)


def test_siamfc_labels_follow_the_target():
    centred = siamfc_labels(17, 8, np.array([[0.0, 0.0]]))[0]
    assert centred[8, 8] == 1 and centred[8, 10] == 1 and centred[8, 11] == 0
    assert centred.sum() == 13  # |dx| + |dy| <= 2 cells
    shifted = siamfc_labels(17, 8, np.array([[16.0, -8.0]]))[0]
    assert shifted[7, 10] == 1 and shifted[8, 8] == 0


def test_balanced_loss_prefers_correct_scores():
    labels = torch.as_tensor(siamfc_labels(17, 8, np.zeros((2, 2))))
    right = (labels * 2 - 1)[:, None] * 5
    assert balanced_logistic_loss(right, labels) < 0.01
    assert balanced_logistic_loss(-right, labels) > 4


def test_rpn_classification_uses_background_then_foreground_channels():
    labels = torch.tensor([[POSITIVE, NEGATIVE, IGNORED, IGNORED]])  # A=1, 2x2 map
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1, 0, 0] = 10   # foreground at the positive
    logits[0, 0, 0, 1] = 10   # background at the negative
    assert rpn_classification_loss(logits, labels) < 1e-3
    assert rpn_classification_loss(-logits, labels) > 5
