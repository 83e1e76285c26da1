"""`siamtrack bag eval` that loses nothing: every run saved as it ends, --resume, --workers.

The kill test starts real tracker nodes (two workers, two nodes at a time), kills the whole
evaluation with SIGKILL after its first run is saved, and resumes it: the runs saved before the
kill are kept as they are, and every sequence ends with the boxes the offline evaluation gives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('rclpy', reason='rclpy is not installed')
pytest.importorskip('vision_msgs.msg', reason='vision_msgs is not built (colcon)')
pytest.importorskip('siam_tracking_ros.srv', reason="this package's interfaces are not built")

from siam_tracking_ros.bag import evaluate, report  # noqa: E402
from siam_tracking_ros.eval import datasets, synth  # noqa: E402
from siam_tracking_ros.tools import cli  # noqa: E402

TRACKER = 'siamfc_alexnet'
SEQUENCES = 3
# Never LOST (the tracker's own default), so every frame has a box as offline.
NODE_PARAMETERS = ('device:=cpu', 'lost_threshold:=0.0', 'recover_threshold:=0.5')
LOCKSTEP_TOLERANCE_PX = 0.5
pytestmark = pytest.mark.usefixtures('isolated_ros_domain')  # and `weights`: test/bag/conftest.py


@pytest.fixture(scope='module')
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('synth')
    config = synth.SynthConfig(frames=8, width=192, height=144, out_of_view_probability=0.0)
    synth.write_uav123_dataset(root, SEQUENCES, seed=13, config=config)
    return root


def bag_eval_arguments(dataset: Path, weights: Path, out: Path, *extra) -> list[str]:
    arguments = ['bag', 'eval', '--dataset', str(dataset), '--trackers', TRACKER,
                 '--weights', str(weights), '--out', str(out), '--workers', '2', '--quiet',
                 '--connect-timeout', '180', '--frame-timeout', '60']
    for parameter in NODE_PARAMETERS:
        arguments += ['--node-param', parameter]
    return arguments + list(extra)


def saved_records(out: Path) -> dict[str, bytes]:
    return {path.parent.name: path.read_bytes()
            for path in (out / 'runs' / TRACKER).glob(f'*/{evaluate.EVALUATION_FILE}')}


def test_workers_need_lockstep_and_their_own_nodes(dataset, tmp_path):
    with pytest.raises(evaluate.EvaluationError, match='--workers > 1 needs lockstep mode'):
        evaluate.EvalOptions(dataset=dataset, trackers=(TRACKER,), out_dir=tmp_path,
                             mode='realtime', workers=2)
    with pytest.raises(evaluate.EvaluationError, match='--workers must be 1'):
        evaluate.EvalOptions(dataset=dataset, trackers=(TRACKER,), out_dir=tmp_path,
                             attach='/somewhere', workers=2)


def test_resume_refuses_runs_made_with_other_settings(dataset, weights, tmp_path):
    options = evaluate.EvalOptions(dataset=dataset, trackers=(TRACKER,), out_dir=tmp_path,
                                   weights=(weights,), node_parameters=NODE_PARAMETERS)
    task = evaluate.ReplayTask(TRACKER, tmp_path / 'bags' / 'synth_000')
    run_dir = task.run_dir(tmp_path)
    run_dir.mkdir(parents=True)
    (run_dir / 'run.json').write_text('{}')
    identity = evaluate.tracker_identity(options, TRACKER)
    (run_dir / evaluate.EVALUATION_FILE).write_text(json.dumps(
        {'identity': {**identity, 'node_parameters': ['device:=cuda']}}))
    with pytest.raises(evaluate.EvaluationError, match=r'made with other settings '
                                                       r'\(node_parameters differ\)'):
        evaluate.is_finished(options, task, identity)


@pytest.mark.slow  # real tracker nodes (2 + 2 started), 3 tiny sequences
@pytest.mark.dds
def test_bag_eval_killed_mid_run_resumes_to_the_offline_boxes(dataset, weights, tmp_path):
    out = tmp_path / 'bag_eval'
    command = [sys.executable, '-m', 'siam_tracking_ros.tools.cli',
               *bag_eval_arguments(dataset, weights, out)]
    run = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not saved_records(out):
        assert run.poll() is None, run.stderr.read().decode()
        assert time.monotonic() < deadline, 'no run was saved'
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # the evaluation and its nodes, with no warning
    run.wait(30)
    run.stderr.close()
    before = saved_records(out)
    assert 0 < len(before) < SEQUENCES, f'the kill came too late to test resuming: {sorted(before)}'

    assert cli.main(bag_eval_arguments(dataset, weights, out, '--resume')) == 0
    after = saved_records(out)
    assert len(after) == SEQUENCES
    for name, content in before.items():
        assert after[name] == content, f'{name} was replayed again'

    offline_out = tmp_path / 'offline'
    assert cli.main(['eval', '--dataset', str(dataset), '--tracker', TRACKER, '--weights',
                     str(weights), '--device', 'cpu', '--out', str(offline_out), '--quiet']) == 0
    results = out / 'report' / report.RESULTS_DIR / TRACKER
    for path in sorted((offline_out / TRACKER).glob('*.txt')):
        np.testing.assert_allclose(datasets.read_ground_truth(results / path.name),
                                   datasets.read_ground_truth(path), atol=LOCKSTEP_TOLERANCE_PX)
    summary = json.loads((out / 'report' / report.REPORT_JSON).read_text())
    for name, content in before.items():
        assert summary['trackers'][TRACKER]['sequences'][name]['auc'] == json.loads(content)[
            'scores']['auc']
