"""The demo and the node benchmark run end to end (tiny settings)."""

import argparse
import csv
import json

import pytest

pytest.importorskip('ros_harness', reason='rclpy or the built ROS interfaces are missing: '
                                          'run `make setup`')

pytestmark = pytest.mark.dds


def test_demo_writes_frames_video_detections_and_status(tmp_path, capsys):
    from siam_tracking_ros.tools.demo import main
    out = tmp_path / 'demo_out'
    assert main(['--frames', '4', '--device', 'cpu', '--tracker', 'siamfc_alexnet',
                 '--out', str(out)]) == 0
    assert sorted(p.name for p in (out / 'frames').iterdir()) == [
        f'{i:06d}.png' for i in range(4)]
    assert (out / 'tracked.avi').stat().st_size > 0
    rows = list(csv.DictReader(open(out / 'detections.csv')))
    assert [row['frame'] for row in rows] == ['0', '1', '2', '3'] and rows[0]['state'] == 'INIT'
    assert len(list(csv.DictReader(open(out / 'status.csv')))) >= 4
    summary = capsys.readouterr().out
    assert 'synth_000: 4 frames, mean IoU' in summary and 'fps through the node' in summary


def test_demo_rejects_a_sequence_without_a_dataset():
    from siam_tracking_ros.tools.demo import main
    with pytest.raises(SystemExit):
        main(['--sequence', 'car16_1'])


def test_node_bench_prints_overhead_and_latency(tmp_path, capsys):
    from siam_tracking_ros.tools.bench_node import run_node_bench
    args = argparse.Namespace(sizes=[(320, 240)], frames=3, threads=1,
                              json=tmp_path / 'bench.json')
    assert run_node_bench(args) == 0
    printed = capsys.readouterr().out
    assert 'Node overhead per frame' in printed and 'p95' in printed
    assert 'idle' in printed and 'tracking (siamfc_alexnet, cpu)' in printed
    assert 'tracker_node log:' in printed
    figures = json.loads((tmp_path / 'bench.json').read_text())
    assert len(figures['overhead']) == 2 and len(figures['latency']) == 2
    assert all(row['p50_ms'] > 0 for row in figures['overhead'] + figures['latency'])
