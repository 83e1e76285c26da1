"""The timing helpers of ``siamtrack bench`` (figures are not asserted: speed is the bench's)."""
import warnings

import pytest

from base_equivalence import synthetic_frames
from siam_tracking_ros.core.benchmark import STAGES, StageClock, time_tracking
from siam_tracking_ros.core.registry import build_tracker


@pytest.fixture(scope='module')
def tracker():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        return build_tracker('siamfc_alexnet', device='cpu')


def test_time_tracking_reports_stages_and_the_backbone(tracker):
    frames, first_box = synthetic_frames(seed=2, count=4, size=(320, 180))
    figures = time_tracking(tracker, frames, first_box, warmup=1, backbone_repeats=1)
    assert figures.frames == 2 and figures.fps > 0 and figures.p95_ms >= figures.p50_ms > 0
    assert set(figures.stage_ms) == set(STAGES) | {'other'}
    assert figures.stage_ms['backbone'] > 0 and figures.stage_ms['crop'] > 0
    assert sum(figures.stage_ms.values()) == pytest.approx(figures.mean_ms)
    assert figures.backbone_ms > 0
    assert figures.ratio_to_backbone == pytest.approx(figures.backbone_ms / figures.mean_ms)


def test_stage_clock_leaves_the_tracker_as_it_was(tracker):
    with StageClock(tracker):
        assert 'extract_features' in vars(tracker)
    assert not {hook for hooks in STAGES.values() for hook in hooks} & set(vars(tracker))


def test_time_tracking_needs_timed_frames(tracker):
    frames, first_box = synthetic_frames(seed=2, count=2, size=(320, 180))
    with pytest.raises(ValueError, match='need more than 1 \\+ warmup'):
        time_tracking(tracker, frames, first_box, warmup=1)
