"""Eqs. (6)-(7): short-term template selection and adoption, on crafted scores and boxes."""

import pytest

from siam_tracking_ros.core.online.template_update import (
    ShortTermTemplateSelector, adopt_short_term)

FIRST = (100.0, 100.0, 40.0, 20.0)


@pytest.mark.parametrize("box_short, score_short, score_first, adopted", [
    (FIRST, 0.95, 0.40, True),                       # same box, gain 0.55
    (FIRST, 0.90, 0.40, True),                       # gain exactly v_c = 0.5
    (FIRST, 0.89, 0.40, False),                      # gain 0.49 < 0.5
    ((108.0, 100.0, 40.0, 20.0), 0.95, 0.40, True),  # IoU = 32/48 = 0.667 >= 0.6
    ((112.0, 100.0, 40.0, 20.0), 0.95, 0.40, False), # IoU = 28/52 = 0.538 < 0.6
    ((300.0, 300.0, 40.0, 20.0), 0.99, 0.10, False), # disjoint boxes
    (FIRST, 0.40, 0.95, False),                      # z_s scores lower
])
def test_eq7_adopts_only_on_overlap_and_score_gain(box_short, score_short, score_first, adopted):
    assert adopt_short_term(box_short, score_short, FIRST, score_first,
                            iou_threshold=0.6, score_gain=0.5) is adopted


def test_eq7_iou_boundary_is_inclusive():
    # Shifted by 10 of 40 pixels: IoU = 30 / 50 = 0.6 exactly.
    assert adopt_short_term((110.0, 100.0, 40.0, 20.0), 0.75, FIRST, 0.5, 0.6, 0.25)


def test_drol_fc_gain_threshold():
    assert adopt_short_term(FIRST, 0.62, FIRST, 0.5, 0.6, 0.1)
    assert not adopt_short_term(FIRST, 0.55, FIRST, 0.5, 0.6, 0.1)


def test_eq6_picks_the_best_frame_of_each_window_above_tau_c():
    selector = ShortTermTemplateSelector(interval=5, score_threshold=0.75)
    scores = {1: 0.8, 2: 0.95, 3: 0.7, 4: 0.9, 5: 0.76,      # window 1: frame 2
              6: 0.5, 7: 0.74, 8: 0.2, 9: 0.6, 10: 0.1,      # window 2: nothing >= 0.75
              11: 0.75, 12: 0.75, 13: 0.3, 14: 0.3, 15: 0.3} # window 3: first of the tie
    handed_over = {}
    for frame, score in scores.items():
        chosen = selector.observe(frame, score, f"frame{frame}")
        if chosen is not None:
            handed_over[frame] = chosen
    assert handed_over == {5: "frame2", 15: "frame11"}


def test_interval_one_updates_every_qualifying_frame():
    selector = ShortTermTemplateSelector(interval=1, score_threshold=0.75)
    assert selector.observe(1, 0.8, "a") == "a"
    assert selector.observe(2, 0.5, "b") is None
    assert selector.observe(3, 0.9, "c") == "c"


def test_bad_interval_is_rejected():
    with pytest.raises(ValueError, match="interval"):
        ShortTermTemplateSelector(interval=0, score_threshold=0.75)
