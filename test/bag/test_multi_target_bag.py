"""`siamtrack bag` on multi-target sequences (``anno/<seq>/<target>.txt``): one bag holding every
target, each set on the first frame under its id, its detections split out by id and scored
against its own ground truth, reported as ``<seq>/<target>``; the node's ``max_targets``.

The unit tests use tiny hand-made sequences. The DDS tests replay a small synthetic two-target
sequence (``eval.synth``, 8 frames of 192x144) beside a single-target one to one tracker node
started for the module, and compare each target's boxes with the offline evaluation's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from siam_tracking_ros.bag import convert, messages, reader, report, runlog, score
from siam_tracking_ros.bag.typestore import DETECTIONS_TYPE, project_typestore
from siam_tracking_ros.core import boxes
from siam_tracking_ros.eval import datasets, metrics, synth

from bag_sequences import draw_frames

MS = 1_000_000
NAN = math.nan
TRACKER = 'siamfc_alexnet'
# The tracker's own defaults (never LOST): every frame has a box, as offline.
NODE_PARAMETERS = ('device:=cpu', 'lost_threshold:=0.0', 'recover_threshold:=0.5')
LOCKSTEP_TOLERANCE_PX = 0.5
# A second target standing still in the corner, absent (NaN) on frame 3; 1-based.
STILL_BOX = (221.0, 181.0, 30.0, 20.0)


def _write_two_target_sequence(root: Path, name: str = 'pair', count: int = 6) -> dict:
    """UAV123 layout ``data_seq/<name>/`` + ``anno/<name>/{square,still}.txt``: the moving square
    of draw_frames and a still target; returns the 1-based ground truth by target."""
    frames, square = draw_frames(count)
    still = np.array([[NAN] * 4 if index == 3 else STILL_BOX for index in range(count)])
    frame_dir = root / 'data_seq' / name
    frame_dir.mkdir(parents=True)
    for index, image in enumerate(frames, start=1):
        assert cv2.imwrite(str(frame_dir / f'{index:06d}.jpg'), image)
    truths = {'square': square, 'still': still}
    (root / 'anno' / name).mkdir(parents=True)
    for target, truth in truths.items():
        lines = [','.join('NaN' if np.isnan(v) else f'{v:g}' for v in row) for row in truth]
        (root / 'anno' / name / f'{target}.txt').write_text('\n'.join(lines) + '\n')
    return truths


@pytest.fixture
def two_target_dataset(tmp_path) -> Path:
    """A UAV123-layout dataset: two-target 'pair' beside single-target 'solo'."""
    root = tmp_path / 'dataset'
    _write_two_target_sequence(root)
    frames, truth = draw_frames(6)
    (root / 'data_seq' / 'solo').mkdir(parents=True)
    for index, image in enumerate(frames, start=1):
        assert cv2.imwrite(str(root / 'data_seq' / 'solo' / f'{index:06d}.jpg'), image)
    (root / 'anno' / 'solo.txt').write_text(
        '\n'.join(','.join(f'{v:g}' for v in row) for row in truth) + '\n')
    return root


def _convert(dataset: Path, out: Path, names=None) -> dict[str, Path]:
    written = convert.convert_dataset(dataset, out, convert.ConvertOptions(start_ns=10**12),
                                      names, report=lambda _line: None)
    return {path.name: path for path in written}


# -- conversion ------------------------------------------------------------------------------
def test_multi_target_sequence_is_one_bag_holding_every_target(two_target_dataset, tmp_path):
    bags = _convert(two_target_dataset, tmp_path / 'bags')
    assert sorted(bags) == ['pair', 'solo']
    pair = reader.bag_info(bags['pair'])
    assert pair.sequence == 'pair' and pair.targets == ('square', 'still')
    truths = reader.read_target_ground_truth(pair)
    dataset = datasets.open_dataset(two_target_dataset)
    for target in ('square', 'still'):
        np.testing.assert_allclose(
            truths[target], boxes.one_based_to_zero_based(dataset[f'pair/{target}'].ground_truth))
    assert np.isnan(truths['still'][3]).all() and not np.isnan(truths['square'][3]).any()
    # On the wire: one detection per target with a box, its id the target's.
    store = project_typestore()
    from rosbags.rosbag2 import Reader
    with Reader(bags['pair']) as bag:
        ids = [[d.id for d in store.deserialize_cdr(data, DETECTIONS_TYPE).detections]
               for connection, _, data in bag.messages() if connection.topic == '/ground_truth']
    assert ids[0] == ['square', 'still'] and ids[3] == ['square']

    # The single-target bag is as before: no target list, its ground truth read as one box.
    solo = reader.bag_info(bags['solo'])
    assert solo.targets == () and convert.META_TARGETS not in reader.bag_custom_data(bags['solo'])
    np.testing.assert_allclose(reader.read_ground_truth(solo),
                               boxes.one_based_to_zero_based(dataset['solo'].ground_truth))
    with pytest.raises(reader.BagError, match='holds a single target'):
        reader.read_target_ground_truth(solo)


def test_selected_targets_make_a_bag_of_those(two_target_dataset, tmp_path):
    bags = _convert(two_target_dataset, tmp_path / 'bags', ['pair/still'])
    assert reader.bag_info(bags['pair']).targets == ('still',)


def test_single_and_multi_target_annotations_of_one_name_are_refused(two_target_dataset,
                                                                    tmp_path):
    (two_target_dataset / 'anno' / 'pair.txt').write_text(
        (two_target_dataset / 'anno' / 'pair' / 'square.txt').read_text())
    with pytest.raises(convert.ConversionError, match='sequence pair has a single-target '
                                                      'annotation beside the targets'):
        _convert(two_target_dataset, tmp_path / 'bags')


# -- splitting the received arrays by id -----------------------------------------------------
def _live():
    pytest.importorskip('rclpy', reason='rclpy is not installed')
    from siam_tracking_ros.bag import live
    return live


def _array(store, stamp_ns: int, boxes_by_id: dict, scores: dict):
    """A Detection2DArray as the node publishes it: one scored detection per id."""
    arrays = [messages.detection_array_message(store, box, stamp_ns, 'camera', target_id=target,
                                               label='car', score=scores[target])
              for target, box in boxes_by_id.items()]
    return store.types[DETECTIONS_TYPE](
        header=messages.header(store, stamp_ns, 'camera'),
        detections=[d for array in arrays for d in array.detections])


def test_recorder_keeps_one_row_per_target_from_the_detection_with_its_id(tmp_path):
    live = _live()
    store = project_typestore()
    message = _array(store, 5 * MS, {'c': (0, 0, 4, 4), 'a': (10, 20, 30, 40)},
                     {'c': 0.5, 'a': 0.75})
    data = bytes(store.serialize_cdr(message, DETECTIONS_TYPE))
    recorder = live.Recorder('/ns', targets=('a', 'b'))
    recorder.on_detections(data)
    a, b = recorder.detections
    assert (a.target_id, a.stamp_ns, a.box, a.score) == ('a', 5 * MS, (10, 20, 30, 40), 0.75)
    # 'b' is not in the array (lost or not reported): no box; 'c' is no target of the run.
    assert b.target_id == 'b' and not b.has_box and math.isnan(b.score)

    recorder.write(tmp_path / 'multi')
    assert (tmp_path / 'multi' / runlog.DETECTIONS_FILE).read_text().splitlines()[0] == (
        'stamp_ns,receipt_ns,x,y,w,h,score,target_id')
    read_back = runlog.read_detections(tmp_path / 'multi')
    assert [row.target_id for row in read_back] == ['a', 'b']
    assert read_back[0] == a and not read_back[1].has_box

    # A single-target recorder takes the first detection, whatever its id, and writes the
    # columns it always did.
    single = live.Recorder('/ns')
    single.on_detections(data)
    [row] = single.detections
    assert (row.target_id, row.box, row.score) == ('', (0, 0, 4, 4), 0.5)
    single.write(tmp_path / 'single')
    assert (tmp_path / 'single' / runlog.DETECTIONS_FILE).read_text().splitlines()[0] == (
        'stamp_ns,receipt_ns,x,y,w,h,score')
    assert runlog.read_detections(tmp_path / 'single') == [row]


def test_a_multi_target_bag_refuses_a_given_box(two_target_dataset, tmp_path):
    live = _live()
    bags = _convert(two_target_dataset, tmp_path / 'bags')
    info = reader.bag_info(bags['pair'])
    assert live.initial_boxes(info) == {'square': (100.0, 80.0, 40.0, 30.0),
                                        'still': (220.0, 180.0, 30.0, 20.0)}
    with pytest.raises(live.ReplayError, match='holds 2 targets'):
        live.initial_boxes(info, (1, 2, 3, 4))


# -- scoring each target on its own rows -----------------------------------------------------
def _frames(count, period_ms=100, start_ms=1000):
    return [runlog.PublishedFrame(index=i, source_stamp_ns=i, stamp_ns=(start_ms + i * period_ms) * MS,
                                  publish_ns=(start_ms + i * period_ms) * MS + 1)
            for i in range(count)]


def _row(stamp_ms, receipt_ms, target, box=(NAN, NAN, NAN, NAN)):
    return runlog.ReceivedDetection(stamp_ms * MS, receipt_ms * MS, *box, score=0.9,
                                    target_id=target)


def test_each_target_is_matched_on_its_own_rows():
    frames = _frames(4)
    rows = [_row(1100, 1150, 'a', (1, 1, 5, 5)), _row(1100, 1150, 'b', (50, 50, 5, 5)),
            # frame 2 skipped by the node; on frame 3 'a' is lost (absent from the array)
            _row(1300, 1420, 'a'), _row(1300, 1420, 'b', (53, 53, 5, 5))]
    a_rows, b_rows = score.rows_of_target(rows, 'a'), score.rows_of_target(rows, 'b')
    lockstep_a = score.tracker_boxes(frames, a_rows, (0, 0, 5, 5), 'lockstep')
    np.testing.assert_array_equal(lockstep_a[:2], [(0, 0, 5, 5), (1, 1, 5, 5)])
    assert np.isnan(lockstep_a[2:]).all()
    realtime_b = score.tracker_boxes(frames, b_rows, (49, 49, 5, 5), 'realtime')
    # Frame 2: the newest box of 'b' a consumer had when frame 3 went out was frame 1's.
    np.testing.assert_array_equal(realtime_b, [(49, 49, 5, 5), (50, 50, 5, 5), (50, 50, 5, 5),
                                               (53, 53, 5, 5)])
    realtime_a = score.tracker_boxes(frames, a_rows, (0, 0, 5, 5), 'realtime')
    np.testing.assert_array_equal(realtime_a[2], (1, 1, 5, 5))
    assert np.isnan(realtime_a[3]).all()  # its own (late) array says it is lost
    assert score.dropped_count(frames, a_rows) == score.dropped_count(frames, b_rows) == 1


def _fake_multi_target_run(bag_path: Path, run_dir: Path, tracker: str = 'fake') -> dict:
    """A run folder as a replay of a multi-target bag leaves it: 'square' answered with its
    ground truth, 'still' 25 px off and not reported on frame 2; returns the truth by target."""
    info = reader.bag_info(bag_path)
    truths = reader.read_target_ground_truth(info)
    frames = [runlog.PublishedFrame(i, s, 10**12 + i * 50 * MS, 10**12 + i * 50 * MS)
              for i, s in enumerate(info.frame_stamps)]
    offsets = {'square': 0.0, 'still': 25.0}
    rows = []
    for frame in frames[1:]:
        for target in info.targets:
            box = truths[target][frame.index] + [offsets[target], 0, 0, 0]
            if target == 'still' and frame.index == 2:
                box = (NAN,) * 4
            rows.append(runlog.ReceivedDetection(frame.stamp_ns, frame.stamp_ns + 20 * MS, *box,
                                                 score=0.8, target_id=target))
    targets = tuple((target, tuple(truths[target][0])) for target in info.targets)
    runlog.write_info(run_dir, runlog.RunInfo(bag=str(bag_path), sequence=info.sequence,
                                              tracker=tracker, namespace='/t', mode='lockstep',
                                              rate=1.0, init_box=targets[0][1], targets=targets))
    runlog.write_frames(run_dir, frames)
    runlog.write_detections(run_dir, rows, by_target=True)
    runlog.write_statuses(run_dir, [])
    return truths


def test_targets_are_scored_and_reported_each_against_its_own_ground_truth(two_target_dataset,
                                                                           tmp_path):
    bags = _convert(two_target_dataset, tmp_path / 'bags')
    run_dir = tmp_path / 'runs' / 'pair'
    truths = _fake_multi_target_run(bags['pair'], run_dir)
    content = json.loads((run_dir / runlog.RUN_FILE).read_text())
    assert list(content['targets']) == ['square', 'still']
    assert runlog.read_info(run_dir).target_ids == ('square', 'still')

    square, still = score.score_run_targets(run_dir)
    assert (square.name, still.name) == ('pair/square', 'pair/still')
    np.testing.assert_allclose(square.boxes, truths['square'])
    np.testing.assert_allclose(square.ground_truth, truths['square'])
    assert square.score.auc == pytest.approx(metrics.score_sequence(truths['square'],
                                                                    truths['square']).auc)
    assert np.isnan(still.boxes[2]).all()
    np.testing.assert_allclose(still.boxes[4], truths['still'][4] + [25, 0, 0, 0])
    # 'still' is absent on frame 3 (not scored) and missed on frame 2: 4 of 5 frames scored,
    # and 25 px off on the 3 tracked ones.
    assert still.score.frames == 5 and still.score.precision_at_20 == pytest.approx(1 / 5)
    assert square.dropped == still.dropped == 0 and square.published == 5
    with pytest.raises(runlog.RunLogError, match='tracked 2 targets; score it with '
                                                 'score_run_targets'):
        score.score_run(run_dir)

    written = report.write_report(tmp_path / 'report', [square, still], 'tiny')
    entry = written['trackers']['fake']
    assert list(entry['sequences']) == ['pair/square', 'pair/still']
    # The ROS figures count the replay once; the scores average over the targets.
    assert entry['overall']['published'] == 5 and entry['overall']['frames'] == 12
    assert entry['overall']['auc'] == pytest.approx((square.score.auc + still.score.auc) / 2)
    results = tmp_path / 'report' / report.RESULTS_DIR / 'fake' / 'pair'
    np.testing.assert_allclose(datasets.read_ground_truth(results / 'square.txt'),
                               boxes.zero_based_to_one_based(truths['square']))
    assert len(datasets.read_ground_truth(results / 'still.txt')) == 6
    table = (tmp_path / 'report' / report.REPORT_MARKDOWN).read_text()
    assert '| fake | pair/square |' in table and '| fake | pair/still |' in table


# -- max_targets -----------------------------------------------------------------------------
def _evaluate():
    _live()
    from siam_tracking_ros.bag import evaluate
    return evaluate


def test_more_targets_than_the_started_nodes_take_is_refused_before_anything_starts(
        two_target_dataset, tmp_path):
    evaluate = _evaluate()
    out = tmp_path / 'out'
    options = evaluate.EvalOptions(dataset=two_target_dataset, trackers=(TRACKER,), out_dir=out,
                                   node_parameters=('device:=cpu', 'max_targets:=1'))
    with pytest.raises(evaluate.EvaluationError,
                       match=r'sequence pair has 2 targets but max_targets of the started nodes is 1'):
        evaluate.evaluate(options, log=lambda _line: None)
    assert not out.exists()
    # Without --node-param: the profile's value, else the node's default (8).
    from siam_tracking_ros.ros.parameters import PARAMETERS
    default = evaluate.EvalOptions(dataset=two_target_dataset, trackers=(TRACKER,), out_dir=out)
    assert evaluate.node_max_targets(default) == PARAMETERS['max_targets'].default == 8
    bad = evaluate.EvalOptions(dataset=two_target_dataset, trackers=(TRACKER,), out_dir=out,
                               node_parameters=('max_targets:=many',))
    with pytest.raises(evaluate.EvaluationError, match="max_targets must be an integer"):
        evaluate.node_max_targets(bad)


# -- end to end over DDS ---------------------------------------------------------------------
SYNTH_SEED = 11  # its first sequence has a second target in view, well apart from the first
SYNTH_CONFIG = synth.SynthConfig(frames=8, width=192, height=144, out_of_view_probability=0.0)


@pytest.fixture(scope='module')
def synthetic_dataset(tmp_path_factory) -> Path:
    """synth_000 with targets 'target' and 'object1', beside single-target 'single'."""
    root = tmp_path_factory.mktemp('synth_multi')
    synth.write_uav123_dataset(root, 1, seed=SYNTH_SEED, config=SYNTH_CONFIG, targets=2)
    single = synth.generate_sequence(SYNTH_SEED, 1, SYNTH_CONFIG)
    synth.write_sequence(root, dataclasses.replace(single, name='single'))
    assert sorted(p.name for p in (root / 'anno' / 'synth_000').glob('*.txt')) == [
        'object1.txt', 'target.txt']
    return root


@pytest.fixture(scope='module')
def running_node(isolated_ros_domain, weights):
    """One tracker node for the module (reliable subscription, never LOST)."""
    _live()
    pytest.importorskip('vision_msgs.msg', reason='vision_msgs is not built (colcon)')
    pytest.importorskip('siam_tracking_ros.srv', reason="this package's interfaces are not built")
    from siam_tracking_ros.bag import nodes
    namespace = f'/bagtest_multi_{os.getpid()}'
    spec = nodes.NodeSpec(TRACKER, namespace, parameters=NODE_PARAMETERS + (
        'reliable_qos:=true', f'weights:={weights}'))
    log_dir = Path(os.environ.get('TMPDIR', '/tmp'))
    with nodes.NodeProcesses() as processes:
        yield processes.start(spec, log_dir / f'bagtest_multi_node_{os.getpid()}.log')


def _attach_options(dataset, out, node, **extra):
    evaluate = _evaluate()
    from siam_tracking_ros.bag import live
    return evaluate.EvalOptions(
        dataset=dataset, trackers=(TRACKER,), out_dir=out, mode='lockstep',
        attach=node.spec.namespace, progress=False,
        replay=live.ReplayOptions(connect_timeout_s=120.0, frame_timeout_s=30.0), **extra)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


def _record_ids(run_dir: Path) -> list[set[str]]:
    """The Detection2D ids of each array the node published in a run."""
    from rosbags.rosbag2 import Reader
    store = project_typestore()
    with Reader(run_dir / runlog.RECORD_BAG) as bag:
        return [{d.id for d in store.deserialize_cdr(data, DETECTIONS_TYPE).detections}
                for connection, _, data in bag.messages()
                if connection.topic.endswith('/detections')]


@pytest.mark.slow  # one tracker node, three tiny replays, the offline evaluation
@pytest.mark.dds
def test_bag_eval_scores_each_target_from_the_detections_with_its_id(
        synthetic_dataset, running_node, weights, tmp_path):
    evaluate = _evaluate()
    out = tmp_path / 'bag_eval'
    result = evaluate.evaluate(_attach_options(synthetic_dataset, out, running_node),
                               log=lambda _line: None)
    entry = result['trackers'][TRACKER]
    assert sorted(entry['sequences']) == ['single', 'synth_000/object1', 'synth_000/target']
    # Two replays of 8 frames: the two targets of synth_000 share one.
    assert entry['overall']['published'] == 14 and entry['overall']['dropped'] == 0
    run_dir = out / 'runs' / TRACKER / 'synth_000'
    assert runlog.read_info(run_dir).target_ids == ('object1', 'target')
    assert any(ids == {'object1', 'target'} for ids in _record_ids(run_dir))

    results = out / 'report' / report.RESULTS_DIR / TRACKER
    truth = {target: datasets.read_ground_truth(synthetic_dataset / 'anno' / 'synth_000' /
                                                f'{target}.txt')
             for target in ('object1', 'target')}
    replayed = {target: datasets.read_ground_truth(results / 'synth_000' / f'{target}.txt')
                for target in truth}
    for target, other in (('object1', 'target'), ('target', 'object1')):
        assert replayed[target].shape == (SYNTH_CONFIG.frames, 4)
        # Tracked frames only (frame 0 is the initial box).
        assert _iou(replayed[target][1:], truth[target][1:]).mean() > 0.4
        assert _iou(replayed[target][1:], truth[other][1:]).mean() < 0.1
    assert datasets.read_ground_truth(results / 'single.txt').shape == (SYNTH_CONFIG.frames, 4)

    # Box for box what the offline evaluation gives each target (a tracker of its own).
    from siam_tracking_ros.tools import cli
    offline = tmp_path / 'offline'
    assert cli.main(['eval', '--dataset', str(synthetic_dataset), '--tracker', TRACKER,
                     '--weights', str(weights), '--device', 'cpu', '--out', str(offline),
                     '--quiet']) == 0
    for name in ('synth_000/object1', 'synth_000/target', 'single'):
        np.testing.assert_allclose(datasets.read_ground_truth(results / f'{name}.txt'),
                                   datasets.read_ground_truth(offline / TRACKER / f'{name}.txt'),
                                   atol=LOCKSTEP_TOLERANCE_PX)

    # Resume: both runs are kept as they are, the report is the same.
    records = {name: (out / 'runs' / TRACKER / name / evaluate.EVALUATION_FILE).read_bytes()
               for name in ('single', 'synth_000')}
    frames_written = (run_dir / runlog.FRAMES_FILE).stat().st_mtime_ns
    assert set(json.loads(records['synth_000'])['target_scores']) == {'object1', 'target'}
    lines = []
    again = evaluate.evaluate(_attach_options(synthetic_dataset, out, running_node, resume=True),
                              log=lines.append)
    assert 'resuming: 2 of 2 runs already done' in lines
    assert (run_dir / runlog.FRAMES_FILE).stat().st_mtime_ns == frames_written
    for name, content in records.items():
        assert (out / 'runs' / TRACKER / name / evaluate.EVALUATION_FILE).read_bytes() == content
    assert again['trackers'][TRACKER]['sequences'] == entry['sequences']


def _set_max_targets(namespace: str, value: int) -> None:
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from siam_tracking_ros.bag import live
    with live.RosEndpoint(f'bagtest_parameters_{os.getpid()}') as endpoint:
        client = endpoint.node.create_client(SetParameters, f'{namespace}/tracker_node/'
                                                            'set_parameters')
        assert client.wait_for_service(timeout_sec=30.0)
        request = SetParameters.Request(parameters=[Parameter(
            name='max_targets', value=ParameterValue(type=ParameterType.PARAMETER_INTEGER,
                                                     integer_value=value))])
        future = client.call_async(request)
        answered = threading.Event()
        future.add_done_callback(lambda _: answered.set())
        assert answered.wait(30.0), 'set_parameters got no reply'
        assert future.result().results[0].successful, future.result().results[0].reason


@pytest.mark.slow
@pytest.mark.dds
def test_an_attached_node_with_fewer_targets_is_refused_before_replaying(
        synthetic_dataset, running_node, tmp_path):
    evaluate = _evaluate()
    from siam_tracking_ros.bag import live
    namespace = running_node.spec.namespace
    _set_max_targets(namespace, 1)
    out = tmp_path / 'refused'
    try:
        with pytest.raises(live.ReplayError, match=rf'sequence synth_000 has 2 targets but '
                                                   rf'max_targets of the node at {namespace} is 1'):
            evaluate.evaluate(_attach_options(synthetic_dataset, out, running_node,
                                              sequences=('synth_000',)), log=lambda _line: None)
    finally:
        _set_max_targets(namespace, 8)
    assert runlog.read_frames(out / 'runs' / TRACKER / 'synth_000') == []
