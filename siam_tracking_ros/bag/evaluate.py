"""``siamtrack bag eval``: convert, start nodes, replay, record, score and report in one go.

Layout of the output folder::

    bags/<sequence>/            the converted bags (replaced on a new evaluation, kept on resume)
    logs/<tracker>[_w<k>].log   output of each node process started (_w<k>: worker k)
    runs/<tracker>/<sequence>/  one replay run (see runlog) and its evaluation.json
    report/                     report.md, report.json, plots, results/<tracker>/<sequence>.txt

Runs are evaluated one after the other, each tracker by a node of its own in namespace
``/siamtrack_eval/<tracker>``, so that they do not compete for the processor in realtime mode.
In lockstep mode ``workers`` > 1 replays that many bags at once, each worker to a node of its own
(``/siamtrack_eval/w<k>/<tracker>``). Each run is scored and saved as soon as it ends
(``runs/<tracker>/<sequence>/evaluation.json``, with the settings that made it), so that
``resume`` replays only the runs not done yet.

A multi-target sequence (``anno/<seq>/<target>.txt``) is one bag and one run ``<seq>``: every
target is set on the first frame under its target id (the ground-truth file's stem), the
detections are recorded per id and each target is scored against its own ground truth (a frame
where it is LOST or not reported is a miss), reported as ``<seq>/<target>`` with its boxes in
``report/results/<tracker>/<seq>/<target>.txt``, as ``siamtrack eval`` names and writes them.
A sequence with more targets than the node's ``max_targets`` is refused before any frame is
replayed: the started nodes' value (``--node-param``, the profile, the node's default) is
checked before anything starts, an attached node's is read from it before its replay.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml
from tqdm import tqdm

from siam_tracking_ros.bag import convert, live, nodes, reader, report, runlog, score
from siam_tracking_ros.core import boxes
from siam_tracking_ros.eval import datasets, ope
from siam_tracking_ros.eval.report import write_json

EVAL_NAMESPACE = '/siamtrack_eval'
EVALUATION_FILE = 'evaluation.json'
# Written when a bag is closed: a bag folder without it was cut short.
BAG_METADATA = 'metadata.yaml'


class EvaluationError(RuntimeError):
    """An evaluation that cannot run with the options given."""


@dataclass(frozen=True)
class EvalOptions:
    dataset: Path
    trackers: tuple[str, ...]
    out_dir: Path
    mode: str = 'lockstep'
    sequences: tuple[str, ...] | None = None
    max_frames: int | None = None
    attach: str | None = None
    convert: convert.ConvertOptions = field(default_factory=convert.ConvertOptions)
    replay: live.ReplayOptions = field(default_factory=live.ReplayOptions)
    # Node parameter profile (config/<profile>.yaml) the started nodes load.
    profile: str = 'uav'
    node_parameters: tuple[str, ...] = ()
    # Checkpoint per tracker, in the order of ``trackers`` (empty: the shipped weights).
    weights: tuple[Path, ...] = ()
    # Keep the runs already saved in out_dir with the same settings; replay only the others.
    resume: bool = False
    # Bags replayed at once (lockstep only), each worker to a node of its own.
    workers: int = 1
    progress: bool = True

    def __post_init__(self):
        if not self.trackers:
            raise EvaluationError('name at least one tracker')
        if len(set(self.trackers)) != len(self.trackers):
            raise EvaluationError(f'a tracker is named twice: {", ".join(self.trackers)}')
        if self.attach is not None and len(self.trackers) != 1:
            raise EvaluationError('--attach evaluates the one running node: name exactly one '
                                  'tracker (the label its results are reported under)')
        if self.weights and len(self.weights) != len(self.trackers):
            raise EvaluationError(f'--weights lists {len(self.weights)} file(s) for '
                                  f'{len(self.trackers)} tracker(s); give one per tracker, in order')
        missing = [str(path) for path in self.weights if not Path(path).is_file()]
        if missing:
            raise EvaluationError(f'weights file(s) not found: {", ".join(missing)}')
        if self.mode not in runlog.MODES:
            raise EvaluationError(f"mode must be one of {', '.join(runlog.MODES)}, got '{self.mode}'")
        if self.workers < 1:
            raise EvaluationError(f'workers must be at least 1, got {self.workers}')
        if self.workers > 1 and self.mode != 'lockstep':
            raise EvaluationError('--workers > 1 needs lockstep mode: realtime runs measure a node '
                                  'at camera rate, which nodes sharing the processor would distort')
        if self.workers > 1 and self.attach is not None:
            raise EvaluationError('--attach replays to the one running node: --workers must be 1')


def node_spec(options: EvalOptions, tracker: str) -> nodes.NodeSpec:
    parameters = list(options.node_parameters)
    if options.weights:
        weights = Path(options.weights[options.trackers.index(tracker)]).resolve()
        parameters.append(f'weights:={weights}')
    # Lockstep studies accuracy: every frame must reach the tracker, so the node subscribes
    # reliably. Realtime keeps the node's default best-effort subscription, as on a drone.
    if options.mode == 'lockstep':
        parameters.append('reliable_qos:=true')
    return nodes.NodeSpec(tracker=tracker, namespace=f'{EVAL_NAMESPACE}/{tracker}',
                          profile=options.profile, parameters=tuple(parameters))


def tracker_identity(options: EvalOptions, tracker: str) -> dict:
    """What a tracker's replayed runs depend on; recorded with each run for --resume."""
    from siam_tracking_ros.core.registry import shipped_weights
    from siam_tracking_ros.ros.process import PROFILE_DIR

    if options.weights:
        weights = Path(options.weights[options.trackers.index(tracker)]).resolve()
    else:
        weights = shipped_weights(tracker) if tracker in _registered_trackers() else None
    profile = PROFILE_DIR / f'{options.profile}.yaml'
    conversion = {key: value for key, value in asdict(options.convert).items()
                  if key not in ('start_ns', 'overwrite')}
    replay = asdict(options.replay)
    return json.loads(json.dumps({
        'tracker': tracker, 'weights': str(weights) if weights else None,
        'weights_sha256': ope.file_digest(weights) if weights else None,
        'profile': options.profile,
        'profile_sha256': ope.file_digest(profile) if profile.is_file() else None,
        'node_parameters': list(options.node_parameters), 'mode': options.mode,
        'attach': options.attach, 'max_frames': options.max_frames,
        'conversion': conversion, 'replay': replay}, default=str))


def _registered_trackers() -> list[str]:
    from siam_tracking_ros.core.registry import list_trackers
    return list_trackers()


@dataclass(frozen=True)
class ReplayTask:
    """One tracker on one bag: the unit that is replayed, scored, saved and resumed."""

    tracker: str
    bag: Path
    # Target ids of a multi-target sequence (empty for a single target).
    targets: tuple[str, ...] = ()

    def run_dir(self, out_dir: Path) -> Path:
        return Path(out_dir) / 'runs' / self.tracker / self.bag.name


def is_finished(options: EvalOptions, task: ReplayTask, identity: dict) -> bool:
    """Whether a complete, saved run of ``task`` with the same identity (and the same targets)
    is on disk."""
    run_dir = task.run_dir(options.out_dir)
    record_path = run_dir / EVALUATION_FILE
    if not (record_path.is_file() and (run_dir / runlog.RUN_FILE).is_file()):
        return False
    stored = json.loads(record_path.read_text()).get('identity', {})
    differing = sorted(key for key in set(stored) | set(identity)
                       if stored.get(key) != identity.get(key))
    if differing:
        raise EvaluationError(
            f'{record_path} was made with other settings ({", ".join(differing)} differ); resume '
            'with the same ones, or evaluate into another --out folder')
    # A run of other targets of the sequence (another --sequences selection) is replayed again.
    return runlog.read_info(run_dir).target_ids == task.targets


def save_run(options: EvalOptions, runs: list[score.RunScore], identity: dict) -> None:
    """A replay's boxes and scores (one per target), as soon as it is replayed; the record
    marks it done."""
    for run in runs:
        ope.write_boxes(report.results_path(Path(options.out_dir) / 'report', run),
                        boxes.zero_based_to_one_based(run.boxes))
    if runs[0].target:
        record = {'identity': identity, 'target_scores': {run.target: run.summary()
                                                          for run in runs}}
    else:
        record = {'identity': identity, 'scores': runs[0].summary()}
    record_path = runs[0].run_dir / EVALUATION_FILE
    ope.replace_atomically(record_path, lambda path: write_json(path, record))


def bag_sequences(options: EvalOptions) -> dict[str, convert.BagSequence]:
    """The evaluated sequences by bag name (a multi-target sequence's targets in one)."""
    names = list(options.sequences) if options.sequences else None
    return convert.bag_sequences(datasets.open_dataset(Path(options.dataset), names))


def node_max_targets(options: EvalOptions) -> int | None:
    """The ``max_targets`` the started nodes run with: a ``--node-param``, else the profile's,
    else the node's default. None with ``attach``: the running node's is read at its replay."""
    if options.attach is not None:
        return None
    from siam_tracking_ros.ros.parameters import PARAMETERS

    given = node_spec(options, options.trackers[0]).parameter_values().get('max_targets')
    source = '--node-param max_targets'
    if given is None:
        source = f'max_targets of the {options.profile} profile'
        given = _profile_parameter(options.profile, 'max_targets',
                                   PARAMETERS['max_targets'].default)
    try:
        return int(given)
    except (TypeError, ValueError):
        raise EvaluationError(f'{source} must be an integer, got {given!r}') from None


def _profile_parameter(profile: str, name: str, default):
    """A node parameter as the profile file sets it (``<node>: ros__parameters: ...``)."""
    from siam_tracking_ros.ros.process import PROFILE_DIR

    path = PROFILE_DIR / f'{profile}.yaml'
    document = yaml.safe_load(path.read_text()) if path.is_file() else None
    for section in (document or {}).values():
        parameters = section.get('ros__parameters') if isinstance(section, dict) else None
        if isinstance(parameters, dict) and name in parameters:
            return parameters[name]
    return default


def check_target_limit(options: EvalOptions, bags: dict[str, convert.BagSequence]) -> None:
    """Refuse, before anything starts, a sequence with more targets than the started nodes
    take."""
    if all(len(bag.target_ids) < 2 for bag in bags.values()):
        return  # max_targets is at least 1
    limit = node_max_targets(options)
    if limit is None:
        return
    for bag in bags.values():
        if len(bag.target_ids) > limit:
            raise EvaluationError(live.too_many_targets(bag.name, len(bag.target_ids), limit,
                                                        'the started nodes'))


def convert_bags(options: EvalOptions, bags: dict[str, convert.BagSequence], log,
                 keep: set[str] = frozenset()) -> list[Path]:
    """One bag per sequence of ``bags`` under ``out_dir/bags``; the complete ones named in
    ``keep`` (whose replays are already done) are left as they are."""
    bag_dir = Path(options.out_dir) / 'bags'
    missing = [name for name in bags
               if not (name in keep and (bag_dir / name / BAG_METADATA).is_file())]
    if missing:
        convert.convert_dataset(options.dataset, bag_dir, replace(options.convert, overwrite=True),
                                [sequence.name for name in missing
                                 for sequence in bags[name].sequences],
                                options.max_frames, report=log)
    return [bag_dir / name for name in bags]


class _FrameProgress:
    """One progress bar over every frame of the evaluation, fed from several replay threads."""

    def __init__(self, bar: tqdm):
        self.bar, self._lock = bar, threading.Lock()

    def for_run(self):
        seen = {'done': 0}

        def progress(done: int, _total: int) -> None:
            with self._lock:
                self.bar.update(done - seen['done'])
            seen['done'] = done
        return progress


class ReplayWorker:
    """Replays tasks one after the other to a node of its own (restarted when the tracker
    changes) through an endpoint of its own; several workers run side by side in threads."""

    def __init__(self, options: EvalOptions, index: int, processes: nodes.NodeProcesses,
                 process_lock: threading.Lock, progress: _FrameProgress, log):
        self.options, self.index, self.log = options, index, log
        self.processes, self.process_lock, self.progress = processes, process_lock, progress
        self.node = None
        self.endpoint = live.RosEndpoint(f'siamtrack_eval_{os.getpid()}_{index}')

    def _namespace(self, tracker: str) -> str:
        if self.options.attach is not None:
            return self.options.attach
        if self.options.workers == 1:
            return f'{EVAL_NAMESPACE}/{tracker}'
        return f'{EVAL_NAMESPACE}/w{self.index}/{tracker}'

    def _node_for(self, tracker: str):
        if self.options.attach is not None:
            return None
        if self.node is not None and self.node.spec.tracker == tracker:
            return self.node
        self.stop_node()
        spec = replace(node_spec(self.options, tracker), namespace=self._namespace(tracker))
        suffix = '' if self.options.workers == 1 else f'_w{self.index}'
        with self.process_lock:
            self.node = self.processes.start(
                spec, Path(self.options.out_dir) / 'logs' / f'{tracker}{suffix}.log')
        self.log(f'[{tracker}] started node pid {self.node.pid} at {spec.namespace} '
                 f'(log: {self.node.log_path})')
        return self.node

    def stop_node(self) -> None:
        if self.node is not None:
            with self.process_lock:
                self.processes.stop(self.node)
            self.log(f'[{self.node.spec.tracker}] node stopped')
            self.node = None

    def replay(self, task: ReplayTask) -> Path:
        node = self._node_for(task.tracker)
        run_dir = task.run_dir(self.options.out_dir)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        replay_options = replace(self.options.replay, namespace=self._namespace(task.tracker),
                                 mode=self.options.mode, tracker_label=task.tracker)
        try:
            live.replay_bag(task.bag, run_dir, replay_options, endpoint=self.endpoint,
                            log=self.log, progress=self.progress.for_run(),
                            health_check=node.check_alive if node else None)
        except live.ReplayError as error:
            if node is None:
                raise
            # The node's own account (a model that failed to load, a crash) explains most
            # failures.
            raise live.ReplayError(f'{error}\nend of the node log ({node.log_path}):\n'
                                   f'{node.log_tail()}') from error
        return run_dir

    def close(self) -> None:
        try:
            self.stop_node()
        finally:
            self.endpoint.close()


def run_tasks(options: EvalOptions, tasks: list[ReplayTask], processes: nodes.NodeProcesses,
              progress: _FrameProgress, finished, log) -> None:
    """Replay ``tasks`` with ``options.workers`` workers, calling ``finished(task, run_dir)``
    (under a lock) as each ends. The first error stops the others and is raised here."""
    pending = list(reversed(tasks))
    lock, process_lock = threading.Lock(), threading.Lock()
    errors: list[BaseException] = []

    def work(index: int) -> None:
        worker = None
        try:
            worker = ReplayWorker(options, index, processes, process_lock, progress, log)
            while True:
                with lock:
                    if errors or not pending:
                        return
                    task = pending.pop()
                run_dir = worker.replay(task)
                with lock:
                    finished(task, run_dir)
        except BaseException as error:  # noqa: B036 (handed to the main thread)
            with lock:
                errors.append(error)
        finally:
            if worker is not None:
                worker.close()

    threads = [threading.Thread(target=work, args=(index,), name=f'replay-{index}', daemon=True)
               for index in range(min(options.workers, len(tasks)))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        with lock:
            errors.append(KeyboardInterrupt())
        processes.stop_all()  # ends the replays waiting on them
        for thread in threads:
            thread.join(60)
        raise
    if errors:
        raise errors[0]


def evaluate(options: EvalOptions, log=print) -> dict:
    """Run the whole loop; returns the report (also written under ``out_dir/report``).

    Each replayed run is scored and saved (``runs/<tracker>/<seq>/evaluation.json`` and the
    boxes under ``report/results``) as soon as it ends; with ``options.resume`` the runs already
    saved with the same settings are kept and only the others are replayed.
    """
    out_dir = Path(options.out_dir)
    bags = bag_sequences(options)
    check_target_limit(options, bags)
    out_dir.mkdir(parents=True, exist_ok=True)
    identities = {tracker: tracker_identity(options, tracker) for tracker in options.trackers}
    bag_dir = out_dir / 'bags'
    tasks = [ReplayTask(tracker, bag_dir / name, bag.target_ids)
             for tracker in options.trackers for name, bag in bags.items()]
    finished = {task for task in tasks
                if options.resume and is_finished(options, task, identities[task.tracker])}
    remaining = [task for task in tasks if task not in finished]
    still_needed = {task.bag.name for task in remaining}
    convert_bags(options, bags, log, keep={name for name in bags if name not in still_needed})
    # Scored after the conversion: scoring reads the bag's ground truth.
    done = {task: score.score_run_targets(task.run_dir(out_dir)) for task in finished}
    if done:
        log(f'resuming: {len(done)} of {len(tasks)} runs already done')

    def replayed(task: ReplayTask, run_dir: Path) -> None:
        runs = score.score_run_targets(run_dir)
        save_run(options, runs, identities[task.tracker])
        done[task] = runs

    frame_counts = {name: reader.bag_info(bag_dir / name).frame_count for name in still_needed}
    total = sum(frame_counts[task.bag.name] for task in remaining)
    with nodes.NodeProcesses() as processes, \
            tqdm(total=total, desc='bag eval', unit='frame', disable=not options.progress,
                 dynamic_ncols=True) as bar:
        run_tasks(options, remaining, processes, _FrameProgress(bar), replayed, log)
    runs = [run for task in tasks for run in done[task]]
    result = report.write_report(out_dir / 'report', runs, Path(options.dataset).name)
    log(report.markdown(result))
    return result
