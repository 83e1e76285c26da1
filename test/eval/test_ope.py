"""One-pass evaluation runner with stand-in trackers whose outputs are known."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from siam_tracking_ros.core import boxes
from siam_tracking_ros.eval import ope, synth
from siam_tracking_ros.eval.datasets import open_dataset
from siam_tracking_ros.tools import cli

CPU = torch.device('cpu')


class OracleTracker:
    """Returns the ground truth (0-based) of each frame, plus optional Gaussian noise."""

    def __init__(self, dataset, noise: float = 0.0, seed: int = 0, fail_on: str | None = None):
        self.by_first_box = {tuple(boxes.one_based_to_zero_based(s.ground_truth[0])): s
                             for s in dataset}
        self.noise = noise
        self.fail_on = fail_on
        self.rng = np.random.default_rng(seed)
        self.calls = []

    def init(self, image, box):
        assert image.dtype == np.uint8 and image.ndim == 3
        self.sequence = self.by_first_box[tuple(box)]
        if self.sequence.name == self.fail_on:
            raise Interrupted(f'stopped on {self.fail_on}')
        self.index = 0
        self.calls.append(('init', box))

    def track(self, image):
        self.index += 1
        truth = self.sequence.ground_truth[self.index]
        box = boxes.one_based_to_zero_based(np.nan_to_num(truth, nan=5.0))
        box = box + self.rng.normal(0.0, self.noise, 4) * [1, 1, 0, 0]
        return SimpleNamespace(box=box, score=1.0)


class Interrupted(Exception):
    """Stands for whatever ends a run early (Ctrl-C, a crash)."""


@dataclass(frozen=True)
class OracleBuilder:
    """``build(name)``: an OracleTracker over the dataset at ``root``, a fresh one per call."""

    root: Path
    noise: float = 0.0
    fail_on: str | None = None

    def __call__(self, name):
        return OracleTracker(open_dataset(self.root), self.noise, fail_on=self.fail_on)


class CountingBuilder:
    def __init__(self, build):
        self.build, self.count = build, 0

    def __call__(self, name):
        self.count += 1
        return self.build(name)


def make_dataset(root, lengths=(6, 5)):
    for number, length in enumerate(lengths):
        name = f'seq{number}'
        frames = root / 'data_seq' / name
        frames.mkdir(parents=True)
        lines = []
        for index in range(length):
            cv2.imwrite(str(frames / f'{index + 1:06d}.jpg'), np.zeros((40, 60, 3), np.uint8))
            lines.append('NaN,NaN,NaN,NaN' if index == 2 else f'{3 + index},{4 + number},20,10')
        (root / 'anno').mkdir(exist_ok=True)
        (root / 'anno' / f'{name}.txt').write_text('\n'.join(lines) + '\n')
    return open_dataset(root)


def test_tracker_is_initialised_with_the_zero_based_first_box(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    tracker = OracleTracker(dataset)
    run = ope.track_sequence(tracker, dataset['seq0'], CPU)
    assert tracker.calls == [('init', (2.0, 3.0, 20.0, 10.0))]
    # Results come back 1-based; the first line is the initial box itself.
    np.testing.assert_array_equal(run.boxes[0], [3, 4, 20, 10])
    np.testing.assert_array_equal(run.boxes[[0, 1, 3]], dataset['seq0'].ground_truth[[0, 1, 3]])
    assert run.tracked_frames == 5 and run.track_seconds > 0 and run.fps > 0


def test_perfect_tracker_report_and_files(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    out = tmp_path / 'out'
    report = ope.evaluate_trackers(['oracle'], lambda name: OracleTracker(dataset), dataset, out,
                                   CPU, progress=False)
    overall = report['trackers']['oracle']['overall']
    assert overall['auc'] == pytest.approx(20 / 21)
    assert overall['precision_20'] == 1.0 and overall['norm_precision'] == 1.0
    assert overall['frames'] == 11 and overall['scored_frames'] == 9  # NaN frames left out
    lines = (out / 'oracle' / 'seq0.txt').read_text().splitlines()
    assert len(lines) == 6 and lines[0] == '3.0,4.0,20.0,10.0'
    for name in ('results.json', 'results.csv', 'success.png', 'precision.png',
                 'norm_precision.png'):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / 'results.json').read_text())['trackers']['oracle']['overall'][
        'auc'] == pytest.approx(20 / 21)
    csv_lines = (out / 'results.csv').read_text().splitlines()
    assert csv_lines[0].startswith('tracker,sequence,auc,precision_20,norm_precision,fps')
    assert [line.split(',')[1] for line in csv_lines[1:]] == ['OVERALL', 'seq0', 'seq1']


def test_results_json_rescores_to_the_same_figures(tmp_path):
    dataset = make_dataset(tmp_path / 'data', lengths=(12, 9))
    out = tmp_path / 'out'
    trackers = {'noisy': 2.5, 'very_noisy': 8.0}
    ope.evaluate_trackers(list(trackers), lambda name: OracleTracker(dataset, trackers[name]),
                          dataset, out, CPU, progress=False)
    report = json.loads((out / 'results.json').read_text())
    rescored = ope.rescore_results(out, dataset)
    assert sorted(rescored) == sorted(trackers)
    for name, entry in report['trackers'].items():
        assert rescored[name]['overall'].auc == entry['overall']['auc']
        assert rescored[name]['overall'].precision_at_20 == entry['overall']['precision_20']
        assert rescored[name]['overall'].norm_precision_at_02 == entry['overall']['norm_precision']
        for sequence, figures in entry['sequences'].items():
            score = rescored[name]['sequences'][sequence]
            assert score.auc == figures['auc']
            assert score.success.tolist() == figures['curves']['success']
    noisy, very_noisy = (report['trackers'][n]['overall']['auc'] for n in trackers)
    assert very_noisy < noisy < 20 / 21


def test_summary_table_lists_each_tracker(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    report = ope.evaluate_trackers(['a', 'b'], lambda name: OracleTracker(dataset), dataset,
                                   tmp_path / 'out', CPU, progress=False)
    table = ope.summary_table(report).splitlines()
    assert table[0].split() == ['tracker', 'AUC', 'P@20', 'norm', 'P', 'fps', 'frames']
    assert [line.split()[0] for line in table[2:]] == ['a', 'b']
    assert table[2].split()[1] == '0.952'


def test_first_frame_without_ground_truth_is_refused(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    sequence = dataset['seq0']
    sequence.ground_truth[0] = np.nan
    with pytest.raises(ValueError, match='seq0: the first frame has no ground-truth box'):
        ope.track_sequence(OracleTracker(dataset), sequence, CPU)


def test_rescoring_an_empty_folder_is_refused(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    (tmp_path / 'out').mkdir()
    with pytest.raises(FileNotFoundError, match='no <tracker>/<sequence>.txt result files'):
        ope.rescore_results(tmp_path / 'out', dataset)


def test_rescoring_with_a_different_frame_count_names_the_sequence(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    ope.evaluate_trackers(['oracle'], lambda name: OracleTracker(dataset),
                          dataset.truncated(4), tmp_path / 'out', CPU, progress=False)
    with pytest.raises(ValueError, match='sequence seq0: tracker boxes cover 4 frames'):
        ope.rescore_results(tmp_path / 'out', dataset)


def scores_of(report):
    """Per tracker and sequence, every figure but the speed (which differs from run to run)."""
    return {name: {sequence: {key: value for key, value in figures.items() if key != 'fps'}
                   for sequence, figures in entry['sequences'].items()}
            for name, entry in report['trackers'].items()}


def box_files(out, tracker):
    return {path.name: path.read_text() for path in sorted((out / tracker).glob('*.txt'))}


def test_each_sequence_is_kept_as_it_finishes_and_resume_runs_only_the_rest(tmp_path):
    dataset = make_dataset(tmp_path / 'data', lengths=(6, 5, 7))
    reference = ope.evaluate_trackers(['noisy'], OracleBuilder(tmp_path / 'data', 3.0), dataset,
                                      tmp_path / 'reference', CPU, progress=False)
    out = tmp_path / 'out'
    with pytest.raises(Interrupted):
        ope.evaluate_trackers(['noisy'], OracleBuilder(tmp_path / 'data', 3.0, fail_on='seq1'),
                              dataset, out, CPU, progress=False)
    # seq0 finished before the interruption: its boxes and record are there, nothing else.
    assert sorted(p.name for p in (out / 'noisy').iterdir()) == ['seq0.json', 'seq0.txt']
    record = json.loads((out / 'noisy' / 'seq0.json').read_text())
    assert record['identity'] == {'tracker': 'noisy'} and record['frames'] == 6
    assert record['scores']['auc'] == reference['trackers']['noisy']['sequences']['seq0']['auc']
    assert not (out / ope.RESULTS_JSON).exists(), 'a report of a tracker that has not finished'

    counting = CountingBuilder(OracleBuilder(tmp_path / 'data', 3.0))
    resumed = ope.evaluate_trackers(['noisy'], counting, dataset, out, CPU, progress=False,
                                    resume=True)
    assert counting.count == 2, 'seq0 was evaluated again'
    assert scores_of(resumed) == scores_of(reference)
    assert box_files(out, 'noisy') == box_files(tmp_path / 'reference', 'noisy')
    assert json.loads((out / ope.RESULTS_JSON).read_text())['trackers']['noisy']['overall'][
        'auc'] == reference['trackers']['noisy']['overall']['auc']


def test_without_resume_every_sequence_runs_again(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    ope.evaluate_trackers(['oracle'], OracleBuilder(tmp_path / 'data'), dataset, tmp_path / 'out',
                          CPU, progress=False)
    counting = CountingBuilder(OracleBuilder(tmp_path / 'data'))
    ope.evaluate_trackers(['oracle'], counting, dataset, tmp_path / 'out', CPU, progress=False)
    assert counting.count == 2


def test_resume_refuses_results_made_with_other_weights(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    build = OracleBuilder(tmp_path / 'data')
    ope.evaluate_trackers(['oracle'], build, dataset, tmp_path / 'out', CPU, progress=False,
                          identities={'oracle': {'weights_sha256': 'aaa', 'config': {'k': 1}}})
    mismatch = r"seq0.json was made with other settings \(weights_sha256: 'aaa' there, 'bbb' now\)"
    with pytest.raises(ope.ResumeMismatchError, match=mismatch):
        ope.evaluate_trackers(['oracle'], build, dataset, tmp_path / 'out', CPU, progress=False,
                              identities={'oracle': {'weights_sha256': 'bbb', 'config': {'k': 1}}},
                              resume=True)
    # The same identity (stored as JSON, compared after the same conversion) resumes.
    counting = CountingBuilder(build)
    ope.evaluate_trackers(['oracle'], counting, dataset, tmp_path / 'out', CPU, progress=False,
                          identities={'oracle': {'weights_sha256': 'aaa', 'config': {'k': 1}}},
                          resume=True)
    assert counting.count == 0


def test_a_sequence_cut_to_another_length_runs_again_on_resume(tmp_path):
    dataset = make_dataset(tmp_path / 'data')
    build = OracleBuilder(tmp_path / 'data')
    ope.evaluate_trackers(['oracle'], build, dataset.truncated(4), tmp_path / 'out', CPU,
                          progress=False)
    counting = CountingBuilder(build)
    report = ope.evaluate_trackers(['oracle'], counting, dataset, tmp_path / 'out', CPU,
                                   progress=False, resume=True)
    assert counting.count == 2 and report['trackers']['oracle']['overall']['frames'] == 11


def test_workers_refuse_a_builder_that_cannot_reach_another_process(tmp_path):
    """(The workers' own results are checked in the kill test below.)"""
    dataset = make_dataset(tmp_path / 'data')
    with pytest.raises(ValueError, match='--workers needs a tracker builder that can be sent'):
        ope.evaluate_trackers(['oracle'], lambda name: OracleTracker(dataset), dataset,
                              tmp_path / 'out', CPU, progress=False, workers=2)


def eval_command(dataset, out, *extra, workers=2):
    return ['eval', '--dataset', str(dataset), '--tracker', 'siamfc_alexnet', '--device', 'cpu',
            '--precision', 'fp32', '--out', str(out), '--quiet', '--workers', str(workers), *extra]


@pytest.mark.slow  # a real network on 4 x 12 frames: here, then in worker processes twice
def test_eval_killed_mid_run_resumes_to_the_same_results(tmp_path):
    root = tmp_path / 'synth'
    synth.write_uav123_dataset(root, 4, seed=3, config=synth.SynthConfig(
        frames=12, width=192, height=144))
    # The reference in this process, with the torch thread count each of 2 workers gets: the
    # workers must give the boxes of one process.
    threads = torch.get_num_threads()
    torch.set_num_threads(ope.threads_per_worker(2))
    try:
        assert cli.main(eval_command(root, tmp_path / 'whole', workers=1)) == 0
    finally:
        torch.set_num_threads(threads)
    reference = json.loads((tmp_path / 'whole' / ope.RESULTS_JSON).read_text())

    out = tmp_path / 'killed'
    run = subprocess.Popen([sys.executable, '-m', 'siam_tracking_ros.tools.cli',
                            *eval_command(root, out)], start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not list(out.glob('siamfc_alexnet/*.json')):
        assert run.poll() is None, run.stderr.read().decode()
        assert time.monotonic() < deadline, 'no sequence finished'
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)  # the evaluation and its workers, with no warning
    run.wait(30)
    run.stderr.close()
    finished = {path.name: path.read_bytes() for path in out.glob('siamfc_alexnet/*.json')}
    assert 0 < len(finished) < 4, f'the kill came too late to test resuming: {sorted(finished)}'
    assert not (out / ope.RESULTS_JSON).exists()

    assert cli.main(eval_command(root, out, '--resume')) == 0
    for name, content in finished.items():
        assert (out / 'siamfc_alexnet' / name).read_bytes() == content, f'{name} was run again'
    assert scores_of(json.loads((out / ope.RESULTS_JSON).read_text())) == scores_of(reference)
    assert box_files(out, 'siamfc_alexnet') == box_files(tmp_path / 'whole', 'siamfc_alexnet')
