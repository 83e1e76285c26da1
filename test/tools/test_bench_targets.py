"""`siamtrack bench --targets`: frame time against the number of targets tracked at once."""
import json

import numpy as np
import pytest

from siam_tracking_ros.tools import cli, cmd_bench


def test_bench_targets_times_each_number_of_targets(tmp_path, capsys):
    figures = tmp_path / 'bench.json'
    code = cli.main(['bench', '--trackers', 'siamrpn_alexnet', '--devices', 'cpu', '--sizes',
                     '320x240', '--precisions', 'fp32', '--frames', '2', '--warmup', '1',
                     '--threads', '1', '--targets', '1,2', '--config', 'lost_threshold=0',
                     '--json', str(figures)])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ['tracker', 'device', 'precision', 'size',
                                               'targets', 'ms/frame', 'p95', 'ms', 'x', '1',
                                               'target', 'backbone', 'ms']
    assert 'ms per frame in' in printed
    result = json.loads(figures.read_text())
    rows = {row['targets']: row for row in result['rows']}
    assert sorted(rows) == [1, 2] and result['targets'] == [1, 2]
    assert rows[1]['ratio_to_single'] == pytest.approx(1.0)
    assert rows[2]['ratio_to_single'] == pytest.approx(rows[2]['ms_per_frame']
                                                       / rows[1]['ms_per_frame'])
    for row in rows.values():
        assert row['backbone_ms'] > 0 and row['stage_ms']['backbone'] > 0
        assert row['stage_ms']['head'] > 0 and row['precision'] == 'fp32'


def test_target_boxes_are_distinct_and_inside_the_frame():
    found = cmd_bench.target_boxes([10, 20, 30, 40], 8, 320, 240)
    assert list(found) == [f'target{index}' for index in range(8)]
    corners = np.array([box[:2] for box in found.values()])
    assert len(np.unique(corners, axis=0)) == 8
    for box in found.values():
        assert box[0] >= 0 and box[1] >= 0 and box[0] + box[2] <= 320 and box[1] + box[3] <= 240


def test_bench_targets_refuses_a_bad_count(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(['bench', '--targets', '1,0'])
    assert stop.value.code == 2
    assert "'0' is not a positive number of targets" in capsys.readouterr().err
