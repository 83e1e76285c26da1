"""The parity harness: its own logic on tiny inputs and with the package as a stand-in reference;
against pysot / siamfc-pytorch when a checkout's path is given (SIAMTRACK_PYSOT_PATH,
SIAMTRACK_SIAMFC_PATH), skipped otherwise (the reference code is not part of this package)."""
import importlib.util
import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from siam_tracking_ros.core.registry import build_untrained
from siam_tracking_ros.eval import parity, synth
from siam_tracking_ros.eval.datasets import open_dataset
from siam_tracking_ros.eval.ope import initial_box
from siam_tracking_ros.tools import cli

TINY = synth.SynthConfig(frames=6, width=320, height=240)
REFERENCE_FRAMES = 12  # a few dozen frames at most: the reference runs on the CPU beside ours


@pytest.fixture(scope='module')
def tiny_sequence(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny')
    synth.write_uav123_dataset(root, 1, seed=5, config=TINY)
    return next(iter(open_dataset(root)))


def state(cx, cy, w, h):
    return parity.TrackState(np.array([cx, cy], float), np.array([w, h], float))


def row(frame, free, lockstep, margin=1.0):
    return parity.FrameRow(frame, free, lockstep, margin)


# ------------------------------------------------------------------ figures on tiny inputs
def test_deviation_is_the_largest_coordinate_difference():
    assert parity.state_deviation(state(10, 20, 30, 40), state(10.5, 19.9, 30, 41.25)) == 1.25
    assert parity.state_deviation(state(1, 2, 3, 4), state(1, 2, 3, 4)) == 0.0


def test_margins_are_relative_gaps_between_the_two_best_candidates():
    assert parity.top_two_margin([0.2, 0.8, 0.6]) == pytest.approx(0.25)
    assert parity.top_two_margin([0.5, 0.5]) == 0.0  # a tie: either may be chosen
    assert parity.top_two_margin([3.0]) == math.inf
    response = np.zeros((9, 9), np.float32)
    response[2, 2], response[2, 3] = 1.0, 0.99  # one peak's shoulder is not a second candidate
    response[6, 6] = 0.5
    assert parity.peak_margin(response) == pytest.approx(0.5)
    response[6, 6] = 0.99995
    assert parity.peak_margin(response) < parity.TIE_MARGIN


def test_summary_passes_only_within_the_limits_or_at_a_near_tie():
    close = [row(1, 0.001, 0.001), row(2, 0.2, 0.002)]
    summary = parity.summarise(close)
    assert summary.passed and summary.parted_at == 2 and summary.first_over_limit is None
    assert not parity.summarise([row(1, 0.0, 0.02)]).passed  # one lockstep frame off
    drifted = [row(1, 0.001, 0.001), row(2, 0.05, 0.001, margin=0.3), row(3, 0.7, 0.001)]
    summary = parity.summarise(drifted)
    assert not summary.passed and summary.parted_at == 2 and summary.first_over_limit == 3
    assert summary.margin_at_parting == 0.3 and 'FAIL' in summary.describe()
    tie = [row(1, 0.001, 0.001), row(2, 6.0, 0.001, margin=2e-5), row(3, 9.0, 0.001)]
    assert parity.summarise(tie).passed
    with pytest.raises(ValueError, match='no tracked frames'):
        parity.summarise([])


def test_calibration_crops_are_seeded_windows_of_the_frames_resized():
    frames = [np.full((40, 60, 3), value, np.uint8) for value in (10, 200)]
    crops = parity.calibration_crops(frames, 9, 6, np.random.default_rng(3))
    again = parity.calibration_crops(frames, 9, 6, np.random.default_rng(3))
    assert crops.shape == (6, 3, 9, 9) and crops.dtype == torch.float32
    assert crops.is_contiguous() and torch.equal(crops, again)
    assert set(crops.flatten().tolist()) <= {10.0, 200.0}  # every crop lies within one frame


def test_batchnorm_calibration_sets_running_statistics_from_the_forward_passes_only():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3)
    model = torch.nn.Sequential(conv, torch.nn.BatchNorm2d(4, momentum=0.3))
    weights = {k: v.clone() for k, v in model.state_dict().items()
               if not k.startswith('1.running') and k != '1.num_batches_tracked'}
    searches = 100 + 50 * torch.rand(8, 3, 6, 6)

    parity.calibrate_batchnorm(model, lambda z, x: model(x), searches[:, :, :3, :3], searches)

    norm = model[1]
    with torch.no_grad():
        features = conv(searches)
    batches = features.split(parity.CALIBRATION_BATCH)
    assert torch.allclose(norm.running_mean,
                          torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0), atol=1e-4)
    assert torch.allclose(norm.running_var, torch.stack(
        [b.var((0, 2, 3), unbiased=True) for b in batches]).mean(0), rtol=1e-4)
    assert not model.training and norm.momentum == 0.3
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())


def test_numpy_recorder_passes_calls_through_and_keeps_copies_of_what_was_chosen_from():
    recorder = parity.NumpyRecorder(['argmax'])
    values = np.array([1.0, 3.0, 2.0])
    assert recorder.argmax(values) == 1 and recorder.sum(values) == 6.0
    values[1] = -1.0  # the reference may change its array after choosing
    (recorded, result), = recorder.take('argmax')
    assert result == 1 and recorded.tolist() == [1.0, 3.0, 2.0]
    assert recorder.take('argmax') == []


def test_got10k_stand_in_provides_the_base_class_siamfc_pytorch_derives_from(monkeypatch):
    if importlib.util.find_spec('got10k') is not None:
        pytest.skip('got10k is installed: the stand-in is not used')
    monkeypatch.delitem(sys.modules, 'got10k', raising=False)
    monkeypatch.delitem(sys.modules, 'got10k.trackers', raising=False)
    parity.got10k_stand_in()
    from got10k.trackers import Tracker
    tracker = Tracker('SiamFC', True)
    assert (tracker.name, tracker.is_deterministic) == ('SiamFC', True)
    monkeypatch.delitem(sys.modules, 'got10k')
    monkeypatch.delitem(sys.modules, 'got10k.trackers')


def test_reference_paths_and_names_are_checked(tmp_path):
    with pytest.raises(ValueError, match="is not a checkout with the 'pysot' package"):
        parity.import_reference(tmp_path, 'pysot')
    with pytest.raises(ValueError, match="no reference known for 'dsiam'"):
        parity.reference_spec('dsiam', tmp_path)
    with pytest.raises(ValueError, match='does not exist'):
        parity.reference_spec('siamrpn_alexnet', tmp_path)  # no experiments/ in an empty folder


# ------------------------------------------------------------------ the package as its own reference
class Shifted(parity.PackageTracker):
    """A stand-in reference whose every step lands ``offset`` px to the right."""

    def __init__(self, tracker, offset):
        super().__init__(tracker)
        self.offset = offset

    def track(self, image_bgr):
        super().track(image_bgr)
        self.tracker.center = self.tracker.center + [self.offset, 0.0]


def seeded_tracker(name='siamfc_alexnet', seed=2):
    torch.manual_seed(seed)
    return build_untrained(name, device='cpu')


def test_the_package_beside_itself_deviates_by_nothing(tiny_sequence):
    sides = [parity.PackageTracker(seeded_tracker()) for _ in range(3)]
    rows = parity.run_side_by_side(*sides, tiny_sequence.frames(), initial_box(tiny_sequence))
    assert [r.frame for r in rows] == list(range(1, len(tiny_sequence)))
    assert all(r.free_px == 0.0 and r.lockstep_px == 0.0 for r in rows)
    assert parity.summarise(rows).passed


def test_config_overrides_reach_both_package_trackers(tiny_sequence, tmp_path, monkeypatch):
    built = []

    def recording_build(name, **kwargs):
        built.append(kwargs)
        return seeded_tracker()

    monkeypatch.setattr('siam_tracking_ros.core.registry.build_tracker', recording_build)
    own = parity.package_weights('siamrpn_alexnet', 'pysot', tmp_path, seed=0)
    as_reference = types.SimpleNamespace(build=lambda path: parity.PackageTracker(seeded_tracker()))
    parity.compare_on_sequence('siamrpn_alexnet', as_reference, own, tiny_sequence, 3,
                               overrides={'window_influence': 0.3})
    assert len(built) == 2
    assert all(kwargs['window_influence'] == 0.3 and kwargs['precision'] == 'fp32'
               for kwargs in built)


def test_lockstep_measures_one_frames_step_and_free_run_the_accumulated_drift(tiny_sequence):
    package, lockstep = (parity.PackageTracker(seeded_tracker()) for _ in range(2))
    reference = Shifted(seeded_tracker(), 0.02)
    rows = parity.run_side_by_side(package, reference, lockstep, tiny_sequence.frames(),
                                   initial_box(tiny_sequence))
    assert all(r.lockstep_px == pytest.approx(0.02, abs=1e-9) for r in rows)
    assert rows[-1].free_px > rows[0].free_px
    assert not parity.summarise(rows).passed  # 0.02 px per frame exceeds the lockstep limit


# ------------------------------------------------------------------ against the reference code
def reference_checkout(variable: str, package: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f'{variable} is not set: give the path of a {package} checkout to compare '
                    'the package with the reference code')
    return Path(value)


def reference_sequence(tmp_path_factory) -> object:
    uav_dev = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'uav_dev'
    if uav_dev.is_dir():
        return open_dataset(uav_dev.resolve(), ['car16_1'])['car16_1']
    root = tmp_path_factory.mktemp('synth_reference')
    synth.write_uav123_dataset(root, 1, seed=11,
                               config=synth.SynthConfig(frames=REFERENCE_FRAMES, width=480,
                                                        height=360))
    return next(iter(open_dataset(root)))


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['package', 'reference'])
def test_siamrpn_alexnet_tracks_as_pysot(tmp_path, tmp_path_factory, kind):
    checkout = reference_checkout('SIAMTRACK_PYSOT_PATH', 'pysot')
    if importlib.util.find_spec('yacs') is None:
        pytest.skip("pysot's config needs yacs, which is not importable here")
    spec = parity.reference_spec('siamrpn_alexnet', checkout)
    assert_parity('siamrpn_alexnet', spec, kind, tmp_path, reference_sequence(tmp_path_factory))


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['package', 'reference'])
def test_siamfc_alexnet_tracks_as_siamfc_pytorch(tmp_path, tmp_path_factory, kind):
    checkout = reference_checkout('SIAMTRACK_SIAMFC_PATH', 'siamfc-pytorch')
    spec = parity.reference_spec('siamfc_alexnet', checkout, 'siamfc')
    assert_parity('siamfc_alexnet', spec, kind, tmp_path, reference_sequence(tmp_path_factory))


def assert_parity(name, spec, kind, work_dir, sequence):
    layout = 'pysot' if spec.kind == 'pysot' else 'siamfc'
    weights = (parity.package_weights(name, layout, work_dir, seed=0) if kind == 'package'
               else parity.reference_weights(spec, name, work_dir, seed=0,
                                             frames_bgr=parity.first_frames([sequence])))
    rows = parity.compare_on_sequence(name, spec, weights, sequence, REFERENCE_FRAMES)
    summary = parity.summarise(rows)
    assert summary.lockstep_max_px < parity.LOCKSTEP_LIMIT_PX, summary.describe()
    assert summary.passed, summary.describe()


@pytest.mark.slow
def test_parity_command_reports_each_sequence_and_writes_per_frame_files(tmp_path, capsys):
    checkout = reference_checkout('SIAMTRACK_SIAMFC_PATH', 'siamfc-pytorch')
    root = tmp_path / 'data'
    synth.write_uav123_dataset(root, 1, seed=3, config=TINY)
    out = tmp_path / 'out'
    code = cli.main(['parity', '--tracker', 'siamfc_alexnet', '--reference-path', str(checkout),
                     '--dataset', str(root), '--frames', '4', '--weights', 'reference',
                     '--out', str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert 'siamfc_alexnet / reference weights / synth_000' in printed and 'PASS' in printed
    assert len((out / 'siamfc_alexnet_reference_synth_000.csv').read_text().splitlines()) == 4
