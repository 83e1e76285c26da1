"""The ROS path end to end: convert -> replay (through a real tracker node) -> score.

A lockstep replay must deliver exactly the boxes the offline evaluation computes with the same
tracker and weights (the ROS path adds no error); a realtime replay reports its latency and
dropped frames. Node processes are started by the code under test and must be gone afterwards.

Slow by nature (each tracker node imports torch and builds its model, ~10-20 s on 2 cores): the
module starts two nodes in all and keeps every sequence tiny (320x240, <= 16 frames).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('rclpy', reason='rclpy is not installed')
pytest.importorskip('vision_msgs.msg', reason='vision_msgs is not built (colcon)')
pytest.importorskip('siam_tracking_ros.srv', reason="this package's interfaces are not built")

from siam_tracking_ros.bag import convert, evaluate, live, nodes, report, score  # noqa: E402
from siam_tracking_ros.eval import datasets, synth  # noqa: E402
from siam_tracking_ros.tools import cli, cmd_bag  # noqa: E402

TRACKER = 'siamfc_alexnet'
# The tracker's own defaults (TrackerConfig: never LOST), so the node publishes a box on every
# frame just as the offline evaluation records one.
NODE_PARAMETERS = ('device:=cpu', 'lost_threshold:=0.0', 'recover_threshold:=0.5')
LOCKSTEP_TOLERANCE_PX = 0.5
pytestmark = pytest.mark.usefixtures('isolated_ros_domain')  # and `weights`: test/bag/conftest.py


@pytest.fixture(scope='module')
def synthetic_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('synth')
    config = synth.SynthConfig(frames=16, width=320, height=240, out_of_view_probability=0.0)
    synth.write_uav123_dataset(root, 1, seed=11, config=config)
    return root


def _node_processes_with(marker: str) -> set[int]:
    """Pids of live node processes whose command line mentions ``marker`` (other evaluations
    running on the machine included: compare with the set taken before)."""
    found = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / 'cmdline').read_bytes().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if marker in command and nodes.NODE_MODULE in command:
            found.append(int(entry.name))
    return set(found)


def _offline_boxes(dataset: Path, weights: Path, out: Path, max_frames: int | None = None,
                   sequences: str | None = None):
    argv = ['eval', '--dataset', str(dataset), '--tracker', TRACKER, '--weights', str(weights),
            '--device', 'cpu', '--out', str(out), '--quiet']
    if max_frames:
        argv += ['--max-frames', str(max_frames)]
    if sequences:
        argv += ['--sequences', sequences]
    assert cli.main(argv) == 0
    return {path.stem: datasets.read_ground_truth(path) for path in (out / TRACKER).glob('*.txt')}


def _replayed_boxes(report_dir: Path):
    folder = report_dir / report.RESULTS_DIR / TRACKER
    return {path.stem: datasets.read_ground_truth(path) for path in folder.glob('*.txt')}


def test_eval_lockstep_equals_offline_and_stops_its_node(synthetic_dataset, weights, tmp_path):
    out = tmp_path / 'bag_eval'
    options = evaluate.EvalOptions(
        dataset=synthetic_dataset, trackers=(TRACKER,), out_dir=out, mode='lockstep',
        convert=convert.ConvertOptions(image_format='jpeg', storage='sqlite3'),
        replay=live.ReplayOptions(connect_timeout_s=120.0, frame_timeout_s=30.0),
        node_parameters=NODE_PARAMETERS, weights=(weights,))
    before = _node_processes_with(evaluate.EVAL_NAMESPACE)
    result = evaluate.evaluate(options, log=lambda _line: None)
    assert not _node_processes_with(evaluate.EVAL_NAMESPACE) - before

    offline = _offline_boxes(synthetic_dataset, weights, tmp_path / 'offline')
    replayed = _replayed_boxes(out / 'report')
    assert set(replayed) == set(offline) and offline
    for name, boxes in offline.items():
        assert replayed[name].shape == boxes.shape
        np.testing.assert_allclose(replayed[name], boxes, atol=LOCKSTEP_TOLERANCE_PX)
    overall = result['trackers'][TRACKER]['overall']
    assert overall['dropped'] == 0 and overall['published'] == 15
    assert (out / 'report' / 'report.md').read_text().count(f'| {TRACKER} |') == 2
    # The record bag holds what the node published: one detection per frame, and status.
    [run_dir] = list((out / 'runs' / TRACKER).iterdir())
    from rosbags.rosbag2 import Reader
    with Reader(run_dir / 'record') as bag:
        counts = {c.topic: c.msgcount for c in bag.connections}
    assert counts[f'{evaluate.EVAL_NAMESPACE}/{TRACKER}/detections'] >= 16


@pytest.fixture(scope='module')
def running_node(weights):
    """One tracker node shared by the attach tests (reliable subscription, never LOST)."""
    namespace = f'/bagtest_{os.getpid()}'
    spec = nodes.NodeSpec(TRACKER, namespace, parameters=NODE_PARAMETERS + (
        'reliable_qos:=true', f'weights:={weights}'))
    log_dir = Path(os.environ.get('TMPDIR', '/tmp'))
    with nodes.NodeProcesses() as processes:
        node = processes.start(spec, log_dir / f'bagtest_node_{os.getpid()}.log')
        yield node
    assert not _node_processes_with(namespace)


def _attach_eval(dataset, out, node, mode, **conversion):
    options = evaluate.EvalOptions(
        dataset=dataset, trackers=(TRACKER,), out_dir=out, mode=mode, attach=node.spec.namespace,
        max_frames=conversion.pop('max_frames', None),
        convert=convert.ConvertOptions(**conversion),
        replay=live.ReplayOptions(connect_timeout_s=120.0, frame_timeout_s=30.0))
    return evaluate.evaluate(options, log=lambda _line: None)


def test_uav_dev_lockstep_equals_offline(uav_dev, running_node, weights, tmp_path):
    frames = 6
    dataset = datasets.load_uav123(uav_dev, ['wakeboard7'])
    assert len(dataset['wakeboard7']) > frames
    out = tmp_path / 'uav'
    options = evaluate.EvalOptions(
        dataset=uav_dev, trackers=(TRACKER,), out_dir=out, mode='lockstep',
        sequences=('wakeboard7',), max_frames=frames, attach=running_node.spec.namespace,
        convert=convert.ConvertOptions(fps=10.0),
        replay=live.ReplayOptions(connect_timeout_s=120.0, frame_timeout_s=30.0))
    evaluate.evaluate(options, log=lambda _line: None)
    offline = _offline_boxes(uav_dev, weights, tmp_path / 'offline', max_frames=frames,
                             sequences='wakeboard7')
    replayed = _replayed_boxes(out / 'report')
    np.testing.assert_allclose(replayed['wakeboard7'], offline['wakeboard7'],
                               atol=LOCKSTEP_TOLERANCE_PX)


def test_realtime_reports_latency_and_drops(synthetic_dataset, running_node, tmp_path):
    # 60 fps: faster than a CPU SiamFC, so the node must skip frames.
    result = _attach_eval(synthetic_dataset, tmp_path / 'rt', running_node, 'realtime', fps=60.0)
    overall = result['trackers'][TRACKER]['overall']
    assert overall['mode'] == 'realtime' and overall['published'] == 15
    assert overall['latency_count'] == overall['published'] - overall['dropped']
    assert overall['dropped'] > 0
    assert 0 < overall['latency_p50_ms'] <= overall['latency_p95_ms'] <= overall['latency_max_ms']
    [run_dir] = list((tmp_path / 'rt' / 'runs' / TRACKER).iterdir())
    run = score.score_run(run_dir)
    # Every frame is scored with some box: its own, or the last one a consumer had.
    assert not np.isnan(run.boxes[1:]).all()
    assert run.score.frames > 0


def _parse(argv):
    parser = argparse.ArgumentParser()
    cmd_bag.add_arguments(parser)
    return parser.parse_args(argv)


def test_no_node_at_namespace(synthetic_dataset, tmp_path, capsys):
    code = cmd_bag.run(_parse(['eval', '--dataset', str(synthetic_dataset), '--trackers', TRACKER,
                               '--out', str(tmp_path / 'out'), '--attach', '/nobody_here',
                               '--connect-timeout', '2']))
    assert code == cmd_bag.EXIT_FAILURE
    assert 'no tracker node answers at /nobody_here' in capsys.readouterr().err


SILENT_NODE = textwrap.dedent('''
    import time, rclpy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray
    from siam_tracking_ros.srv import SetTarget
    rclpy.init()
    node = rclpy.create_node('silent', namespace='{namespace}')
    node.create_subscription(Image, 'image', lambda message: None, 1)
    node.create_publisher(Detection2DArray, 'detections', 10)
    node.create_service(SetTarget, 'set_target', lambda request, response: time.sleep(3600))
    rclpy.spin(node)
''')


def test_node_that_never_answers(synthetic_dataset, tmp_path, capsys):
    namespace = f'/silent_{os.getpid()}'
    silent = subprocess.Popen([sys.executable, '-c', SILENT_NODE.format(namespace=namespace)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        code = cmd_bag.run(_parse(['eval', '--dataset', str(synthetic_dataset), '--trackers',
                                   TRACKER, '--out', str(tmp_path / 'out'), '--attach', namespace,
                                   '--connect-timeout', '8', '--max-frames', '4']))
    finally:
        silent.kill()
        silent.wait()
    assert code == cmd_bag.EXIT_FAILURE
    assert f'the node at {namespace} did not take in the first frame' in capsys.readouterr().err


def test_failing_node_is_reported_and_stopped(synthetic_dataset, tmp_path, capsys):
    before = _node_processes_with(f'{evaluate.EVAL_NAMESPACE}/no_such_tracker')
    code = cmd_bag.run(_parse(['eval', '--dataset', str(synthetic_dataset), '--trackers',
                               'no_such_tracker', '--out', str(tmp_path / 'out'), '--quiet',
                               '--connect-timeout', '10', '--max-frames', '4']))
    assert code == cmd_bag.EXIT_FAILURE
    # The node stays up without a model, so the replay times out waiting for it (on its image
    # subscription or its answer to the first frame); the error quotes the node's log, which
    # says why.
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'within 10 s' in err
    assert "tracker 'no_such_tracker'" in err.split('end of the node log')[1]
    assert not _node_processes_with(f'{evaluate.EVAL_NAMESPACE}/no_such_tracker') - before


def test_record_writes_bag_and_csv(tmp_path):
    out = tmp_path / 'recording'
    assert cmd_bag.run(_parse(['record', '--namespace', '/quiet_here', '--out', str(out),
                               '--duration', '1', '--storage', 'sqlite3'])) == 0
    from rosbags.rosbag2 import Reader
    with Reader(out / 'record') as bag:
        assert sorted(c.topic for c in bag.connections) == ['/quiet_here/detections',
                                                            '/quiet_here/status']
    assert (out / 'detections.csv').read_text().startswith('stamp_ns,receipt_ns,x,y,w,h,score')
    assert cmd_bag.run(_parse(['record', '--namespace', '/quiet_here', '--out', str(out),
                               '--duration', '1'])) == cmd_bag.EXIT_FAILURE
