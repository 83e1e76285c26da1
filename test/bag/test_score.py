"""Scoring runs from their logs: stamp matching, the realtime consumer rule, latency, drops,
and the report files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from siam_tracking_ros.bag import convert, reader, report, runlog, score
from siam_tracking_ros.eval import datasets

MS = 1_000_000
NAN = math.nan


def _frames(count, period_ms=100, start_ms=1000):
    return [runlog.PublishedFrame(index=i, source_stamp_ns=i, stamp_ns=(start_ms + i * period_ms) * MS,
                                  publish_ns=(start_ms + i * period_ms) * MS + 1)
            for i in range(count)]


def _detection(stamp_ms, receipt_ms, box=(NAN, NAN, NAN, NAN), confidence=0.9):
    return runlog.ReceivedDetection(stamp_ms * MS, receipt_ms * MS, *box, score=confidence)


INIT = (10.0, 20.0, 30.0, 40.0)


def test_lockstep_uses_each_frames_own_detection_only():
    frames = _frames(4)
    detections = [_detection(1000, 1001),                        # idle answer to frame 0
                  _detection(1100, 1150, (11, 21, 30, 40)),
                  _detection(1300, 1390, (13, 23, 30, 40))]      # frame 2 never answered
    boxes = score.tracker_boxes(frames, detections, INIT, 'lockstep')
    np.testing.assert_array_equal(boxes[0], INIT)
    np.testing.assert_array_equal(boxes[1], (11, 21, 30, 40))
    assert np.isnan(boxes[2]).all()
    np.testing.assert_array_equal(boxes[3], (13, 23, 30, 40))
    assert score.dropped_count(frames, detections) == 1
    np.testing.assert_allclose(score.latencies_ms(frames, detections), [50.0, 90.0])


def test_realtime_falls_back_to_what_a_consumer_last_saw():
    frames = _frames(5)
    detections = [_detection(1100, 1180, (11, 21, 30, 40)),
                  # frame 2 skipped by the node; frame 3's answer arrives after frame 4 went out
                  _detection(1300, 1420, (13, 23, 30, 40)),
                  _detection(1400, 1480)]                        # lost: empty array
    boxes = score.tracker_boxes(frames, detections, INIT, 'realtime')
    np.testing.assert_array_equal(boxes[1], (11, 21, 30, 40))
    # Frame 2: when frame 3 went out (1300 ms) the newest box received was frame 1's.
    np.testing.assert_array_equal(boxes[2], (11, 21, 30, 40))
    # Frame 3 had its own (late) answer.
    np.testing.assert_array_equal(boxes[3], (13, 23, 30, 40))
    # Frame 4's own answer says the target is lost: no box.
    assert np.isnan(boxes[4]).all()
    assert score.dropped_count(frames, detections) == 1
    stats = score.LatencyStats.of(score.latencies_ms(frames, detections))
    assert stats.count == 3 and stats.max_ms == 120.0 and stats.p50_ms == 80.0


def test_realtime_frame_before_any_answer_is_a_miss():
    boxes = score.tracker_boxes(_frames(3), [_detection(1200, 1250, (1, 2, 3, 4))], INIT,
                                'realtime')
    assert np.isnan(boxes[1]).all()


def test_repeated_answer_keeps_the_first():
    frames = _frames(2)
    detections = [_detection(1100, 1200, (5, 5, 5, 5)), _detection(1100, 1300, (9, 9, 9, 9))]
    np.testing.assert_array_equal(score.tracker_boxes(frames, detections, INIT, 'lockstep')[1],
                                  (5, 5, 5, 5))


def test_unknown_mode():
    with pytest.raises(ValueError, match='mode must be one of'):
        score.tracker_boxes(_frames(2), [], INIT, 'fast')


def _fake_run(bag_path, run_dir, tracker, offset_px, mode='lockstep', skip=()):
    """A run folder as a replay would leave it, answering every frame with the ground truth
    shifted by ``offset_px`` (frames in ``skip`` unanswered)."""
    info = reader.bag_info(bag_path)
    truth = reader.read_ground_truth(info)
    frames = [runlog.PublishedFrame(i, s, 10**12 + i * 50 * MS, 10**12 + i * 50 * MS)
              for i, s in enumerate(info.frame_stamps)]
    detections = [runlog.ReceivedDetection(f.stamp_ns, f.stamp_ns + (20 + f.index) * MS,
                                           *(truth[f.index] + [offset_px, 0, 0, 0]), score=0.8)
                  for f in frames[1:] if f.index not in skip]
    runlog.write_info(run_dir, runlog.RunInfo(bag=str(bag_path), sequence=info.sequence,
                                              tracker=tracker, namespace='/t', mode=mode,
                                              rate=1.0, init_box=tuple(truth[0])))
    runlog.write_frames(run_dir, frames)
    runlog.write_detections(run_dir, detections)
    runlog.write_statuses(run_dir, [])


def test_score_and_report_of_two_trackers(tiny_dataset, tmp_path):
    [bag_path] = convert.convert_dataset(tiny_dataset, tmp_path / 'bags',
                                         convert.ConvertOptions(start_ns=0),
                                         report=lambda _line: None)
    _fake_run(bag_path, tmp_path / 'runs' / 'exact', 'exact', 0.0)
    _fake_run(bag_path, tmp_path / 'runs' / 'shifted', 'shifted', 25.0, skip=(2,))
    runs = [score.score_run(tmp_path / 'runs' / name) for name in ('exact', 'shifted')]
    exact, shifted = runs
    # Frame 3 has no ground truth and is left out: 5 scored frames, all perfect.
    assert exact.score.frames == 5 and exact.score.auc == pytest.approx(20 / 21)
    assert exact.dropped == 0 and shifted.dropped == 1
    # 25 px off: outside the 20 px precision threshold on every tracked frame (4 of 5 scored).
    assert shifted.score.precision_at_20 == pytest.approx(1 / 5)
    assert exact.latency.max_ms == pytest.approx(25.0)

    written = report.write_report(tmp_path / 'report', runs, 'tiny')
    content = json.loads((tmp_path / 'report' / report.REPORT_JSON).read_text())
    assert set(content['trackers']) == {'exact', 'shifted'}
    assert content['trackers']['shifted']['overall']['dropped'] == 1
    assert written['trackers']['exact']['overall']['auc'] == pytest.approx(20 / 21)
    table = (tmp_path / 'report' / report.REPORT_MARKDOWN).read_text()
    assert '| exact | lockstep | 1 | 0.952 |' in table
    for name in ('success.png', 'precision.png'):
        assert (tmp_path / 'report' / name).stat().st_size > 1000
    # Boxes written 1-based, as the offline evaluation writes them.
    saved = datasets.read_ground_truth(tmp_path / 'report' / 'results' / 'exact' / 'square.txt')
    sequence = datasets.open_dataset(tiny_dataset)['square']
    np.testing.assert_allclose(saved, sequence.ground_truth)


def test_incomplete_run_is_refused(tiny_dataset, tmp_path):
    [bag_path] = convert.convert_dataset(tiny_dataset, tmp_path / 'bags', convert.ConvertOptions(),
                                         report=lambda _line: None)
    _fake_run(bag_path, tmp_path / 'run', 'x', 0.0)
    frames = runlog.read_frames(tmp_path / 'run')
    runlog.write_frames(tmp_path / 'run', frames[:4])
    with pytest.raises(runlog.RunLogError, match='published 4 of the bag\'s 6 frames'):
        score.score_run(tmp_path / 'run')


def test_duplicate_labels_are_refused(tiny_dataset, tmp_path):
    [bag_path] = convert.convert_dataset(tiny_dataset, tmp_path / 'bags', convert.ConvertOptions(),
                                         report=lambda _line: None)
    for name in ('a', 'b'):
        _fake_run(bag_path, tmp_path / name, 'same', 0.0)
    runs = [score.score_run(tmp_path / name) for name in ('a', 'b')]
    with pytest.raises(report.ReportError, match='labelled same'):
        report.build_report(runs, 'tiny')


def test_not_a_run_folder(tmp_path):
    with pytest.raises(runlog.RunLogError, match='not a replay run folder'):
        score.score_run(tmp_path)
