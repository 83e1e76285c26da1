"""The `siamtrack` dispatcher and its eval / synth / bench subcommands, end to end."""
import json

import numpy as np
import pytest

from siam_tracking_ros.eval import ope, synth
from siam_tracking_ros.eval.baselines import CSRT_NAME, csrt_available
from siam_tracking_ros.eval.datasets import open_dataset
from siam_tracking_ros.tools import cli, cmd_bench

TINY = synth.SynthConfig(frames=10, width=320, height=240)


@pytest.fixture(scope='module')
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny')
    synth.write_uav123_dataset(root, 2, seed=7, config=TINY)
    return root


def assert_one_line_error(capsys, code, *fragments):
    assert code == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert 'Traceback' not in error and len(error.splitlines()) == 1, error
    for fragment in fragments:
        assert fragment in error, error


@pytest.mark.slow  # tracks 18 frames with a real network on CPU (5-12 s on 2 shared cores)
def test_eval_end_to_end_with_a_registered_tracker_rescores_to_the_json(tiny_dataset, tmp_path,
                                                                         capsys):
    out = tmp_path / 'out'
    code = cli.main(['eval', '--dataset', str(tiny_dataset), '--tracker', 'siamfc_alexnet',
                     '--device', 'cpu', '--out', str(out), '--quiet'])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:3] == ['tracker', 'AUC', 'P@20']
    assert 'siamfc_alexnet' in printed
    report = json.loads((out / 'results.json').read_text())
    entry = report['trackers']['siamfc_alexnet']
    assert sorted(entry['sequences']) == ['synth_000', 'synth_001']
    assert entry['overall']['frames'] == 20 and entry['overall']['fps'] > 0
    for name in ('synth_000', 'synth_001'):
        assert len((out / 'siamfc_alexnet' / f'{name}.txt').read_text().splitlines()) == 10
    rescored = ope.rescore_results(out, open_dataset(tiny_dataset))['siamfc_alexnet']
    assert rescored['overall'].auc == entry['overall']['auc']
    assert rescored['overall'].precision_at_20 == entry['overall']['precision_20']
    assert rescored['overall'].norm_precision_at_02 == entry['overall']['norm_precision']
    for png in ('success.png', 'precision.png', 'norm_precision.png'):
        assert (out / png).stat().st_size > 0


@pytest.mark.skipif(not csrt_available(), reason='OpenCV CSRT (opencv-contrib) is not installed')
def test_eval_runs_the_csrt_baseline_and_honours_sequences_and_max_frames(tiny_dataset, tmp_path):
    out = tmp_path / 'out'
    code = cli.main(['eval', '--dataset', str(tiny_dataset), '--tracker', CSRT_NAME,
                     '--sequences', 'synth_001', '--max-frames', '4', '--out', str(out),
                     '--quiet', '--device', 'cpu'])
    assert code == 0
    report = json.loads((out / 'results.json').read_text())
    assert list(report['trackers'][CSRT_NAME]['sequences']) == ['synth_001']
    assert report['settings']['max_frames'] == 4
    assert len((out / CSRT_NAME / 'synth_001.txt').read_text().splitlines()) == 4
    rescored = ope.rescore_results(out, open_dataset(tiny_dataset).truncated(4))
    assert rescored[CSRT_NAME]['overall'].auc == report['trackers'][CSRT_NAME]['overall']['auc']


@pytest.mark.parametrize('arguments, fragments', [
    (['--tracker', 'no_such_tracker'], ["unknown tracker 'no_such_tracker'"]),
    (['--tracker', 'siamfc_alexnet', '--config', 'not_a_field=1'],
     ['unknown config field', 'not_a_field']),
    (['--tracker', 'siamfc_alexnet', '--config', 'novalue'], ['--config expects key=value']),
    (['--tracker', 'siamfc_alexnet', '--sequences', 'nope'], ['no sequence named nope']),
    (['--tracker', 'siamfc_alexnet,siamrpn_alexnet', '--weights', 'a.pth'],
     ['--weights lists 1 file(s) for 2 tracker(s)']),
])
def test_eval_bad_input_ends_with_one_line(tiny_dataset, tmp_path, capsys, arguments, fragments):
    code = cli.main(['eval', '--dataset', str(tiny_dataset), '--out', str(tmp_path / 'o'),
                     '--device', 'cpu', '--quiet'] + arguments)
    assert_one_line_error(capsys, code, 'siamtrack eval: error:', *fragments)


def test_eval_missing_dataset_folder(tmp_path, capsys):
    code = cli.main(['eval', '--dataset', str(tmp_path / 'none'), '--tracker', 'siamfc_alexnet',
                     '--device', 'cpu', '--out', str(tmp_path / 'o')])
    assert_one_line_error(capsys, code, 'dataset folder not found')


def test_config_values_are_typed():
    from siam_tracking_ros.tools.cmd_eval import parse_overrides
    assert parse_overrides(['a=1', 'b=0.5', 'c=false', 'd=text', 'e=[1, 2]']) == {
        'a': 1, 'b': 0.5, 'c': False, 'd': 'text', 'e': [1, 2]}


def test_synth_command_writes_the_requested_dataset(tmp_path, capsys):
    code = cli.main(['synth', '--out', str(tmp_path / 's'), '--sequences', '2', '--seed', '3',
                     '--frames', '5', '--size', '128x96'])
    assert code == 0
    dataset = open_dataset(tmp_path / 's')
    assert dataset.names == ['synth_000', 'synth_001']
    assert dataset['synth_000'].read_frame(0).shape == (96, 128, 3)
    assert 'wrote 2 sequences of 5 frames (128x96)' in capsys.readouterr().out


def test_synth_refuses_a_malformed_size(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(['synth', '--out', str(tmp_path), '--sequences', '1', '--size', '640by360'])
    assert stop.value.code == 2
    assert 'size must be WIDTHxHEIGHT' in capsys.readouterr().err


def test_bench_times_a_tracker_and_csrt(tmp_path, capsys):
    figures = tmp_path / 'bench.json'
    code = cli.main(['bench', '--trackers', 'siamfc_alexnet', '--devices', 'cpu', '--sizes',
                     '160x120', '--frames', '2', '--warmup', '1', '--threads', '1',
                     '--json', str(figures)])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ['tracker', 'device', 'precision', 'size', 'fps',
                                               'ms/frame', 'p95', 'ms', 'x', 'CSRT', 'x',
                                               'backbone']
    assert 'ms per frame in' in printed and 'backbone' in printed  # the stage table
    rows = json.loads(figures.read_text())['rows']
    tracker_rows = [row for row in rows if row['tracker'] == 'siamfc_alexnet']
    # fp32 and bf16 (where the CPU has no bf16 instructions, bf16 is emulated: slow, but timed)
    expected = cmd_bench.device_precisions(cmd_bench.torch.device('cpu'), None)
    assert [row['precision'] for row in tracker_rows] == expected
    assert all(row['size'] == '160x120' and row['ratio_to_backbone'] > 0 for row in tracker_rows)
    assert all(row['stage_ms']['backbone'] > 0 for row in tracker_rows)
    assert tracker_rows[0]['fps'] > 0
    if csrt_available():
        csrt = next(row for row in rows if row['tracker'] == CSRT_NAME)
        assert tracker_rows[0]['ratio_to_csrt'] == pytest.approx(
            tracker_rows[0]['fps'] / csrt['fps'])
    else:
        assert tracker_rows[0]['ratio_to_csrt'] is None


def test_bench_baseline_ratio_with_repeats_and_config(tmp_path, capsys):
    figures = tmp_path / 'bench.json'
    # fp32 only: bf16 is timed by the test above, and costs 8x fp32 where the CPU emulates it.
    code = cli.main(['bench', '--trackers', 'siamfc_alexnet,siamrpn_alexnet', '--devices', 'cpu',
                     '--precisions', 'fp32', '--sizes', '160x120', '--frames', '2',
                     '--warmup', '1', '--threads', '1', '--baseline', 'siamfc_alexnet',
                     '--repeats', '2',
                     '--config', 'lost_threshold=0', '--json', str(figures)])
    assert code == 0
    assert 'x siamfc_alexnet' in capsys.readouterr().out.splitlines()[0]
    result = json.loads(figures.read_text())
    assert result['repeats'] == 2 and result['config_overrides'] == {'lost_threshold': 0}
    rows = {row['tracker']: row for row in result['rows']}
    assert rows['siamfc_alexnet']['ratio_to_baseline'] == pytest.approx(1.0)
    assert rows['siamrpn_alexnet']['ratio_to_baseline'] == pytest.approx(
        rows['siamrpn_alexnet']['fps'] / rows['siamfc_alexnet']['fps'])


def test_bench_baseline_must_be_timed(capsys):
    code = cli.main(['bench', '--trackers', 'siamfc_alexnet', '--devices', 'cpu',
                     '--baseline', 'drol_fc'])
    assert_one_line_error(capsys, code, '--baseline drol_fc must be one of the timed trackers')


def test_bench_unknown_tracker(capsys):
    code = cli.main(['bench', '--trackers', 'nope', '--devices', 'cpu'])
    assert_one_line_error(capsys, code, 'unknown tracker(s) nope')


def test_bench_node_reports_a_missing_node_benchmark(monkeypatch, capsys):
    monkeypatch.setattr(cmd_bench, 'NODE_BENCH_MODULE', 'siam_tracking_ros.tools.no_such_module')
    code = cli.main(['bench', '--node'])
    assert_one_line_error(capsys, code, 'node benchmark is not available')


def test_a_missing_subcommand_module_is_reported_as_not_available(monkeypatch, capsys):
    monkeypatch.setitem(cli.SUBCOMMANDS, 'ghost', 'a subcommand whose module does not exist')
    code = cli.main(['ghost'])
    assert_one_line_error(capsys, code, "'ghost' is not available", 'cmd_ghost is missing')


def test_a_missing_dependency_of_a_subcommand_is_named(monkeypatch, capsys):
    def fail_import(name):
        raise ModuleNotFoundError("No module named 'rosbags'", name='rosbags')

    monkeypatch.setattr(cli.importlib, 'import_module', fail_import)
    code = cli.main(['bag'])
    assert_one_line_error(capsys, code, "'bag' is not available", "module 'rosbags'")


def test_unknown_subcommand_and_help(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(['dance'])
    assert stop.value.code == 2
    with pytest.raises(SystemExit) as stop:
        cli.main(['--help'])
    assert stop.value.code == 0
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in cli.SUBCOMMANDS)


def test_argument_types():
    assert cli.names_list(' a, b,,c ') == ['a', 'b', 'c']
    assert cli.frame_size('640x360') == (640, 360)
    assert cli.int_at_least(2)('5') == 5
    for parse, text in ((cli.names_list, ' , '), (cli.frame_size, '640'),
                        (cli.int_at_least(2), '1'), (cli.int_at_least(2), 'two')):
        with pytest.raises(Exception, match='expected|must|size'):
            parse(text)


@pytest.mark.slow  # 10 real 1280x720 frames through a network on CPU (20-40 s on 2 shared cores)
@pytest.mark.shared_data
def test_eval_on_the_real_development_set(uav_dev, tmp_path, capsys):
    out = tmp_path / 'out'
    code = cli.main(['eval', '--dataset', str(uav_dev), '--tracker', 'siamrpn_alexnet',
                     '--sequences', 'wakeboard7', '--device', 'cpu', '--max-frames', '10',
                     '--out', str(out), '--quiet'])
    assert code == 0
    report = json.loads((out / 'results.json').read_text())
    entry = report['trackers']['siamrpn_alexnet']
    assert entry['overall']['frames'] == 10
    lines = (out / 'siamrpn_alexnet' / 'wakeboard7.txt').read_text().splitlines()
    assert len(lines) == 10
    # The first line is the published first box of wakeboard7, unchanged (1-based).
    np.testing.assert_allclose([float(v) for v in lines[0].split(',')], [623, 299, 11, 38])
    rescored = ope.rescore_results(out, open_dataset(uav_dev, ['wakeboard7']).truncated(10))
    assert rescored['siamrpn_alexnet']['overall'].auc == entry['overall']['auc']
    assert 'siamrpn_alexnet' in capsys.readouterr().out
