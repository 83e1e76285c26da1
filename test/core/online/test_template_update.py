"""Eqs. (6)-(7): short-term template selection and adoption, on crafted scores and boxes."""

import pytest
import torch

from siam_tracking_ros.core.online.template_update import (
    ShortTermTemplateSelector, adaptive_score_gain, adopt_short_term, online_score_gain,
    siamese_score_gain)

FIRST = (100.0, 100.0, 40.0, 20.0)


@pytest.mark.parametrize("box_short, gain, adopted", [
    (FIRST, 0.55, True),
    (FIRST, 0.50, True),                        # gain exactly v_c = 0.5
    (FIRST, 0.49, False),
    ((108.0, 100.0, 40.0, 20.0), 0.55, True),   # IoU = 32/48 = 0.667 >= 0.6
    ((112.0, 100.0, 40.0, 20.0), 0.55, False),  # IoU = 28/52 = 0.538 < 0.6
    ((300.0, 300.0, 40.0, 20.0), 0.90, False),  # disjoint boxes
    (FIRST, -0.55, False),                      # z_s lands on a lower online score
])
def test_eq7_adopts_only_on_overlap_and_score_gain(box_short, gain, adopted):
    assert adopt_short_term(box_short, FIRST, gain, iou_threshold=0.6,
                            gain_threshold=0.5) is adopted


def test_eq7_iou_boundary_is_inclusive():
    # Shifted by 10 of 40 pixels: IoU = 30 / 50 = 0.6 exactly.
    assert adopt_short_term((110.0, 100.0, 40.0, 20.0), FIRST, 0.25, 0.6, 0.25)


def _online_map_with_peak_at(cell_xy, size=9):
    """A 9 x 9 online map (stride 8) falling from 1 at `cell_xy` to 0 four cells away."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                            torch.arange(size, dtype=torch.float32), indexing="ij")
    distance = torch.hypot(xs - cell_xy[0], ys - cell_xy[1])
    return torch.clamp(1.0 - distance / 4.0, min=0.0) * 3.0 - 1.0   # raw range [-1, 2]


def test_gain_is_read_from_one_min_max_normalised_online_map():
    online = _online_map_with_peak_at((6, 4))          # peak 2 cells (16 px) right of the centre
    # z_s predicts the centre on the online peak, z_1 two cells to the left of it (the centre):
    # normalised scores 1 and 0.5.
    gain = online_score_gain(online, 8.0, (16.0, 0.0), (0.0, 0.0))
    assert gain == pytest.approx(0.5, abs=1e-5)
    assert online_score_gain(online, 8.0, (0.0, 0.0), (16.0, 0.0)) == pytest.approx(-0.5, abs=1e-5)
    # Half a cell: bilinear between the two neighbours.
    assert online_score_gain(online, 8.0, (12.0, 0.0), (0.0, 0.0)) == pytest.approx(0.375,
                                                                                 abs=1e-5)


def test_gain_rule_fires_for_nearby_boxes_when_z_s_sits_on_the_online_peak():
    # The DROL-FC case: boxes 8 px apart (IoU 0.667 for 40 x 20 boxes) and z_s on the peak of
    # the online map, z_1 one cell off it: normalised scores 1 and 0.75, a gain that clears
    # v_c = 0.1 (the Siamese peaks the authors' code compares never differ that much).
    online = _online_map_with_peak_at((5, 4))
    gain = online_score_gain(online, 8.0, (8.0, 0.0), (0.0, 0.0))
    assert gain == pytest.approx(0.25, abs=1e-5)
    short = (FIRST[0] + 8.0, *FIRST[1:])
    assert adopt_short_term(short, FIRST, gain, 0.6, 0.1)
    assert not adopt_short_term(short, FIRST, gain, 0.6, 0.5)


def test_siamese_gain_uses_one_scale_for_both_templates():
    first = torch.tensor([[0.0, 1.0], [2.0, 4.0]])      # z_1's map, peak 4
    short = torch.tensor([[1.0, 2.0], [3.0, 8.0]])      # z_s matches better, peak 8
    # Common range [0, 8]: normalised peaks 1 and 0.5. Normalising each map on its own would
    # give 1 and 1, a gain of 0.
    assert siamese_score_gain(short, 8.0, first, 4.0) == pytest.approx(0.5)
    assert siamese_score_gain(first, 4.0, short, 8.0) == pytest.approx(-0.5)


def test_adaptive_gain_mixes_the_two_gains_with_lambda():
    assert adaptive_score_gain(0.5, 0.1, 0.6) == pytest.approx(0.6 * 0.1 + 0.4 * 0.5)
    assert adaptive_score_gain(0.3, 0.9, 0.0) == pytest.approx(0.3)


def test_drol_fc_rule_fires_when_z_s_matches_better_and_agrees_on_the_box():
    first_map = torch.zeros(4, 4)
    first_map[1, 1] = 2.0
    short_map = torch.zeros(4, 4)
    short_map[1, 2] = 3.0
    siamese = siamese_score_gain(short_map, 3.0, first_map, 2.0)       # 1 - 2/3
    online = online_score_gain(_online_map_with_peak_at((5, 4)), 8.0, (8.0, 0.0), (0.0, 0.0))
    gain = adaptive_score_gain(siamese, online, 0.6)                   # 0.4/3 + 0.6 * 0.25
    assert gain == pytest.approx(0.4 / 3 + 0.15, abs=1e-5)
    short = (FIRST[0] + 8.0, *FIRST[1:])
    assert adopt_short_term(short, FIRST, gain, 0.6, 0.1)


def test_hard_negative_frames_never_supply_the_template():
    selector = ShortTermTemplateSelector(interval=3, score_threshold=0.75)
    assert selector.observe(1, 0.99, "hard", eligible=False) is None
    assert selector.observe(2, 0.80, "normal") is None
    assert selector.observe(3, 0.95, "hard again", eligible=False) == "normal"
    selector.observe(4, 0.99, "hard", eligible=False)
    selector.observe(5, 0.98, "hard", eligible=False)
    assert selector.observe(6, 0.97, "hard", eligible=False) is None


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
