"""Box conventions of the evaluation: the package's and pysot's test script's."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from siam_tracking_ros.core import boxes
from siam_tracking_ros.eval import ope, synth
from siam_tracking_ros.eval.conventions import CONVENTIONS, convention
from siam_tracking_ros.eval.datasets import open_dataset, read_ground_truth

FILE_BOX = np.array([10.0, 20.0, 30.0, 41.0])  # 1-based x, y, w, h as UAV123 writes it


def test_package_convention_starts_on_the_annotated_pixels_and_writes_1_based_boxes():
    package = convention('package')
    start = package.tracker_box(FILE_BOX)
    np.testing.assert_array_equal(start, [9.0, 19.0, 30.0, 41.0])
    np.testing.assert_array_equal(package.result_boxes(start), FILE_BOX)
    np.testing.assert_array_equal(package.first_line(FILE_BOX), FILE_BOX)


def test_pysot_convention_starts_where_pysots_test_script_does_and_writes_cx_minus_half_w():
    pysot = convention('pysot')
    start = pysot.tracker_box(FILE_BOX)
    # tools/test.py: cx = x + w / 2 (get_axis_aligned_bbox), then init on cx - (w - 1) / 2.
    x, y, w, h = FILE_BOX
    np.testing.assert_allclose(start, [x + w / 2 - (w - 1) / 2, y + h / 2 - (h - 1) / 2, w, h])
    centre = boxes.xywh_to_center_size(start)
    np.testing.assert_allclose(centre[:2], [x + w / 2, y + h / 2])  # the centre pysot tracks from
    np.testing.assert_array_equal(pysot.first_line(FILE_BOX), start)  # its first line is that box
    # A tracked state (cx, cy, w, h) is written as pysot's tracker returns it: cx - w / 2.
    state = np.array([[100.0, 50.0, 21.0, 12.0]])
    written = pysot.result_boxes(boxes.center_size_to_xywh(state))
    np.testing.assert_allclose(written, [[100.0 - 10.5, 50.0 - 6.0, 21.0, 12.0]])
    # The same state in the package's files: 1-based x + (w - 1) / 2 = cx, 1.5 px right of pysot's.
    package_written = convention('package').result_boxes(boxes.center_size_to_xywh(state))
    np.testing.assert_allclose(package_written[:, :2] - written[:, :2], 1.5)


def test_unknown_conventions_and_malformed_boxes_are_refused():
    assert sorted(CONVENTIONS) == ['package', 'pysot']
    with pytest.raises(ValueError, match="unknown box convention 'otb'"):
        convention('otb')
    with pytest.raises(ValueError, match='4 values'):
        convention('pysot').tracker_box([1.0, 2.0, 3.0])


class FixedStep:
    """A stand-in tracker: remembers its first box and moves it by (2, 1) px each frame."""

    def init(self, image, box):
        self.box = np.asarray(box, dtype=np.float64)
        self.first = self.box.copy()

    def track(self, image):
        self.box = self.box + [2.0, 1.0, 0.0, 0.0]
        return SimpleNamespace(box=self.box.copy(), score=1.0)


@pytest.mark.parametrize('name', ['package', 'pysot'])
def test_evaluation_reads_and_writes_the_boxes_in_the_chosen_convention(tmp_path, name):
    root = tmp_path / 'data'
    synth.write_uav123_dataset(root, 1, seed=4, config=synth.SynthConfig(frames=4, width=160,
                                                                         height=120))
    dataset = open_dataset(root)
    truth = dataset.sequences[0].ground_truth
    tracker = FixedStep()
    ope.evaluate_trackers(['step'], lambda _: tracker, dataset, tmp_path / 'out', 'cpu',
                          progress=False, convention=name)
    rule = convention(name)
    np.testing.assert_allclose(tracker.first, rule.tracker_box(truth[0]))
    written = read_ground_truth(tmp_path / 'out' / 'step' / f'{dataset.names[0]}.txt')
    expected_tracked = [rule.tracker_box(truth[0]) + [2.0 * k, 1.0 * k, 0, 0] for k in (1, 2, 3)]
    np.testing.assert_allclose(written[0], rule.first_line(truth[0]), atol=1e-3)
    np.testing.assert_allclose(written[1:], rule.result_boxes(np.array(expected_tracked)),
                               atol=1e-3)
    report = json.loads((tmp_path / 'out' / ope.RESULTS_JSON).read_text())
    assert report['box_convention'] == name
