"""OPE metrics on hand-made boxes whose IoU and centre errors are known in closed form."""
import re

import numpy as np
import pytest

from siam_tracking_ros.eval import metrics

GT = np.array([[1.0, 1.0, 10.0, 10.0]])


def test_half_width_shift_has_iou_one_third_and_centre_error_five():
    # Shifted by half its width: intersection 50, union 150 -> IoU 1/3; centre error 5 px.
    score = metrics.score_sequence(np.array([[6.0, 1.0, 10.0, 10.0]]), GT)
    thresholds = metrics.SUCCESS_THRESHOLDS
    np.testing.assert_array_equal(score.success, (1 / 3 > thresholds).astype(float))
    assert score.success[:7].tolist() == [1.0] * 7  # thresholds 0 .. 0.30 are below 1/3
    assert score.success[7:].sum() == 0.0
    assert score.auc == pytest.approx(7 / 21)
    assert score.precision[4] == 0.0 and score.precision[5] == 1.0  # error exactly 5 px
    assert score.precision_at_20 == 1.0
    # Normalised error 5 / 10 = 0.5: missed at 0.2, reached at the last threshold 0.5.
    assert score.norm_precision_at_02 == 0.0
    assert score.norm_precision[-1] == 1.0 and score.norm_precision[-2] == 0.0
    assert score.frames == 1


def test_perfect_tracker_scores_twenty_of_twenty_one():
    gt = np.array([[1.0, 1.0, 10.0, 20.0], [5.0, 7.0, 12.0, 8.0], [30.0, 2.0, 4.0, 4.0]])
    score = metrics.score_sequence(gt.copy(), gt)
    # IoU 1 exceeds every threshold but the last (1.0 itself, compared with '>').
    assert score.success.tolist() == [1.0] * 20 + [0.0]
    assert score.auc == pytest.approx(20 / 21)
    assert score.precision.tolist() == [1.0] * 51
    assert score.norm_precision.tolist() == [1.0] * 51


def test_precision_at_twenty_counts_frames_within_twenty_pixels():
    gt = np.repeat(GT, 4, axis=0)
    predicted = gt.copy()
    predicted[:, 1] += [0.0, 19.0, 20.0, 21.0]  # vertical centre errors
    score = metrics.score_sequence(predicted, gt)
    assert score.precision_at_20 == pytest.approx(3 / 4)
    assert score.precision[0] == pytest.approx(1 / 4)
    # Normalised by the 10 px height: 0, 1.9, 2.0, 2.1 -> only the first is within 0.2.
    assert score.norm_precision_at_02 == pytest.approx(1 / 4)


def test_normalised_error_divides_x_and_y_by_ground_truth_width_and_height():
    gt = np.array([[1.0, 1.0, 100.0, 10.0]])
    # 15 px right of a 100 px wide box is 0.15 of its width: within 0.2.
    score = metrics.score_sequence(np.array([[16.0, 1.0, 100.0, 10.0]]), gt)
    assert score.norm_precision_at_02 == 1.0
    # 3 px down in a 10 px high box is 0.3: outside 0.2.
    score = metrics.score_sequence(np.array([[1.0, 4.0, 100.0, 10.0]]), gt)
    assert score.norm_precision_at_02 == 0.0


def test_frames_without_ground_truth_are_left_out():
    gt = np.array([[1.0, 1.0, 10.0, 10.0], [np.nan] * 4, [1.0, 1.0, 10.0, 10.0],
                   [5.0, 5.0, 0.0, 10.0]])
    predicted = np.array([[1.0, 1.0, 10.0, 10.0], [500.0, 500.0, 3.0, 3.0],
                          [6.0, 1.0, 10.0, 10.0], [900.0, 900.0, 1.0, 1.0]])
    score = metrics.score_sequence(predicted, gt)
    reference = metrics.score_sequence(predicted[[0, 2]], gt[[0, 2]])
    assert score.frames == 2
    np.testing.assert_array_equal(score.success, reference.success)
    np.testing.assert_array_equal(score.precision, reference.precision)
    np.testing.assert_array_equal(score.norm_precision, reference.norm_precision)
    assert score.auc == pytest.approx((20 / 21 + 7 / 21) / 2)


def test_nan_tracker_output_counts_as_a_miss():
    gt = np.repeat(GT, 2, axis=0)
    predicted = np.array([[1.0, 1.0, 10.0, 10.0], [np.nan] * 4])
    score = metrics.score_sequence(predicted, gt)
    assert score.success[0] == 0.5
    assert score.precision[-1] == 0.5
    assert score.norm_precision[-1] == 0.5


def test_scores_do_not_depend_on_the_shared_origin():
    gt = np.array([[10.0, 20.0, 30.0, 40.0], [12.0, 18.0, 30.0, 44.0]])
    predicted = gt + [[3.0, -2.0, 5.0, 1.0], [-7.0, 4.0, -3.0, 6.0]]
    one_based = metrics.score_sequence(predicted, gt)
    zero_based = metrics.score_sequence(predicted - [1, 1, 0, 0], gt - [1, 1, 0, 0])
    np.testing.assert_allclose(one_based.success, zero_based.success)
    np.testing.assert_allclose(one_based.precision, zero_based.precision)


def test_overall_is_the_mean_of_per_sequence_curves_not_of_frames():
    perfect = metrics.score_sequence(GT, GT)
    far = np.repeat(GT, 3, axis=0)
    missed = metrics.score_sequence(far + [100.0, 100.0, 0.0, 0.0], far)
    overall = metrics.mean_score([perfect, missed])
    assert overall.auc == pytest.approx((20 / 21 + 0.0) / 2)
    assert overall.precision_at_20 == pytest.approx(0.5)
    assert overall.frames == 4


def test_summary_has_the_headline_figures():
    summary = metrics.score_sequence(GT, GT).summary()
    assert summary == {'auc': pytest.approx(20 / 21), 'precision_20': 1.0,
                       'norm_precision': 1.0, 'scored_frames': 1}


@pytest.mark.parametrize('predicted, gt, message', [
    (np.zeros((2, 4)), np.zeros((3, 4)), 'cover 2 frames but the ground truth has 3'),
    (np.zeros((2, 3)), np.zeros((2, 4)), 'shape (N, 4)'),
    (np.zeros((1, 4)), np.full((1, 4), np.nan), 'no frame with the target present'),
])
def test_bad_input_is_refused_with_a_specific_message(predicted, gt, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        metrics.score_sequence(predicted, gt)


def test_mean_of_nothing_is_refused():
    with pytest.raises(ValueError, match='no sequence scores'):
        metrics.mean_score([])
