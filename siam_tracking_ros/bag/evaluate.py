"""``siamtrack bag eval``: convert, start nodes, replay, record, score and report in one go.

Layout of the output folder::

    bags/<sequence>/            the converted bags (replaced on a new evaluation)
    logs/<tracker>.log          output of each node process started
    runs/<tracker>/<sequence>/  one replay run (see runlog)
    report/                     report.md, report.json, plots, results/<tracker>/<sequence>.txt

Trackers are evaluated one after the other, each by a node of its own in namespace
``/siamtrack_eval/<tracker>``, so that they do not compete for the processor in realtime mode.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from siam_tracking_ros.bag import convert, live, nodes, report, runlog, score

EVAL_NAMESPACE = '/siamtrack_eval'


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


def convert_bags(options: EvalOptions, log) -> list[Path]:
    bag_dir = Path(options.out_dir) / 'bags'
    conversion = replace(options.convert, overwrite=True)
    names = list(options.sequences) if options.sequences else None
    return convert.convert_dataset(options.dataset, bag_dir, conversion, names,
                                   options.max_frames, report=log)


def _progress_printer(tracker: str, sequence: str, log):
    step = {'next': 0}

    def progress(done: int, total: int) -> None:
        # About ten lines per sequence.
        if done >= step['next'] or done == total:
            log(f'  [{tracker}] {sequence}: {done}/{total} frames')
            step['next'] = done + max(1, total // 10)
    return progress


def replay_tracker(options: EvalOptions, tracker: str, bags: list[Path], processes, log) -> list[Path]:
    """Replay every bag to one tracker's node (started here unless attaching)."""
    out_dir = Path(options.out_dir)
    node = None
    namespace = options.attach
    if options.attach is None:
        spec = node_spec(options, tracker)
        namespace = spec.namespace
        node = processes.start(spec, out_dir / 'logs' / f'{tracker}.log')
        log(f'[{tracker}] started node pid {node.pid} at {namespace} (log: {node.log_path})')
    replay_options = replace(options.replay, namespace=namespace, mode=options.mode,
                             tracker_label=tracker)
    run_dirs = []
    try:
        with live.RosEndpoint(f'siamtrack_eval_{tracker}') as endpoint:
            for bag_path in bags:
                run_dir = out_dir / 'runs' / tracker / bag_path.name
                if run_dir.exists():
                    shutil.rmtree(run_dir)
                live.replay_bag(bag_path, run_dir, replay_options, endpoint=endpoint, log=log,
                                progress=_progress_printer(tracker, bag_path.name, log),
                                health_check=node.check_alive if node else None)
                run_dirs.append(run_dir)
    except live.ReplayError as error:
        if node is None:
            raise
        # The node's own account (a model that failed to load, a crash) explains most failures.
        raise live.ReplayError(f'{error}\nend of the node log ({node.log_path}):\n'
                               f'{node.log_tail()}') from error
    finally:
        if node is not None:
            processes.stop(node)
            log(f'[{tracker}] node stopped')
    return run_dirs


def evaluate(options: EvalOptions, log=print) -> dict:
    """Run the whole loop; returns the report (also written under ``out_dir/report``)."""
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bags = convert_bags(options, log)
    run_dirs = []
    with nodes.NodeProcesses() as processes:
        for tracker in options.trackers:
            run_dirs += replay_tracker(options, tracker, bags, processes, log)
    runs = [score.score_run(run_dir) for run_dir in run_dirs]
    result = report.write_report(out_dir / 'report', runs, Path(options.dataset).name)
    log(report.markdown(result))
    return result
