"""``siamtrack bag``: rosbag replay evaluation of the tracker node.

Subcommands: ``convert`` (sequences to bags), ``replay`` (a bag to a running node, recording its
answers), ``record`` (a node's detections and status to a bag and CSV), ``score`` (runs to a
report) and ``eval`` (all of it, starting one node per tracker).

A multi-target sequence (``anno/<seq>/<target>.txt``) is converted to one bag holding all its
targets; ``replay`` and ``eval`` set each of them on the first frame under its target id (the
file's stem), and ``score`` and ``eval`` report each target as ``<seq>/<target>`` against its own
ground truth (results in ``results/<tracker>/<seq>/<target>.txt``, as ``siamtrack eval``
writes them). A sequence with more targets than the node's ``max_targets`` is refused before
it is replayed.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from siam_tracking_ros.bag import convert, reader, runlog
from siam_tracking_ros.eval.datasets import DatasetError
from siam_tracking_ros.tools.cli import int_at_least, names_list

EXIT_FAILURE = 2
EXIT_INTERRUPTED = 130


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(part) for part in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f"box must be x,y,w,h numbers, got '{text}'") from None
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"box must have 4 values x,y,w,h, got '{text}'")
    return values


def _add_conversion_options(parser) -> None:
    parser.add_argument('--fps', type=float, default=30.0,
                        help='frame rate the frames are stamped at (default 30; 10 for the '
                             'UAV123 10 fps version)')
    parser.add_argument('--storage', choices=sorted(convert.STORAGES), default='mcap')
    parser.add_argument('--format', dest='image_format', choices=convert.IMAGE_FORMATS,
                        default='raw', help='raw: sensor_msgs/Image bgr8; jpeg: CompressedImage')
    parser.add_argument('--jpeg-quality', type=int, default=95,
                        help='quality for frames that are not JPEG files already')
    parser.add_argument('--sequences', type=names_list, help='comma-separated sequence names')
    parser.add_argument('--max-frames', type=int_at_least(2),
                        help='convert only the first N frames of each sequence')


def _add_replay_options(parser) -> None:
    parser.add_argument('--rate', type=float, default=1.0,
                        help='realtime playback speed relative to the recorded rate')
    parser.add_argument('--frame-timeout', type=float, default=10.0,
                        help='seconds to wait for one frame\'s detection (lockstep)')
    parser.add_argument('--connect-timeout', type=float, default=120.0,
                        help='seconds to wait for the node to come up and take a target')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest='bag_command', required=True, metavar='COMMAND')

    p = commands.add_parser('convert', help='dataset sequences to rosbag2 files')
    p.add_argument('dataset', type=Path, help='UAV123-layout or plain sequence folder(s)')
    p.add_argument('out', type=Path, help='folder receiving one bag per sequence')
    _add_conversion_options(p)
    p.add_argument('--start-stamp', type=float,
                   help='stamp of the first frame in seconds (default: now)')
    p.add_argument('--overwrite', action='store_true', help='replace existing bags')

    p = commands.add_parser('replay', help='publish a bag to a running tracker node')
    p.add_argument('bag', type=Path)
    p.add_argument('--out', type=Path, required=True, help='run folder to write')
    p.add_argument('--namespace', default='/tracker', help='namespace of the node')
    p.add_argument('--mode', choices=runlog.MODES, default='lockstep')
    p.add_argument('--box', type=_box, help='initial box x,y,w,h (0-based; default: the first '
                                            'ground-truth box; single-target bags only: a '
                                            'multi-target bag sets each target on its own)')
    p.add_argument('--label', default='', help='tracker label the run is reported under')
    _add_replay_options(p)

    p = commands.add_parser('record', help="record a node's detections and status")
    p.add_argument('--namespace', default='/tracker')
    p.add_argument('--out', type=Path, required=True)
    p.add_argument('--duration', type=float, help='seconds to record (default: until Ctrl-C)')
    p.add_argument('--storage', choices=sorted(convert.STORAGES), default='mcap')

    p = commands.add_parser('score', help='score replay runs and write a report')
    p.add_argument('runs', type=Path, nargs='+', help='run folders (or folders holding them)')
    p.add_argument('--out', type=Path, required=True, help='report folder')
    p.add_argument('--dataset-name', default='replayed bags')

    p = commands.add_parser('eval', help='convert, start nodes, replay, record, score, report')
    p.add_argument('--dataset', type=Path, required=True)
    p.add_argument('--trackers', type=names_list, required=True)
    p.add_argument('--mode', choices=runlog.MODES, default='lockstep')
    p.add_argument('--out', type=Path, required=True)
    p.add_argument('--attach', metavar='NAMESPACE',
                   help='evaluate the node already running in NAMESPACE instead of starting one')
    p.add_argument('--profile', choices=('uav', 'vehicle'), default='uav',
                   help='parameter profile (config/<profile>.yaml) of the started nodes')
    p.add_argument('--weights', type=names_list, default=(),
                   help='checkpoint file per tracker, comma-separated in the order of --trackers '
                        '(default: the weights the package ships)')
    p.add_argument('--node-param', action='append', default=[], metavar='NAME:=VALUE',
                   help='extra parameter for the started nodes (repeatable)')
    p.add_argument('--resume', action='store_true',
                   help='keep the runs already saved in --out with the same settings and replay '
                        'only the others (refused when they were made with other settings)')
    p.add_argument('--workers', type=int_at_least(1), default=1,
                   help='bags replayed at once in lockstep mode, each to a node of its own '
                        '(default 1)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    _add_conversion_options(p)
    _add_replay_options(p)


def _conversion_options(args, **extra) -> convert.ConvertOptions:
    return convert.ConvertOptions(fps=args.fps, storage=args.storage,
                                  image_format=args.image_format,
                                  jpeg_quality=args.jpeg_quality, **extra)


def _replay_options(args, **extra):
    from siam_tracking_ros.bag import live
    return live.ReplayOptions(rate=args.rate, frame_timeout_s=args.frame_timeout,
                              connect_timeout_s=args.connect_timeout, **extra)


def run_convert(args) -> int:
    start_ns = None if args.start_stamp is None else int(round(args.start_stamp * 1e9))
    options = _conversion_options(args, start_ns=start_ns, overwrite=args.overwrite)
    names = list(args.sequences) if args.sequences else None
    convert.convert_dataset(args.dataset, args.out, options, names, args.max_frames)
    return 0


def run_replay(args) -> int:
    from siam_tracking_ros.bag import live
    options = _replay_options(args, namespace=args.namespace, mode=args.mode,
                              tracker_label=args.label)
    info = live.replay_bag(args.bag, args.out, options, box=args.box,
                           progress=lambda done, total: print(f'{done}/{total} frames', end='\r'))
    print(f'\n{info.sequence}: replayed in {info.mode} mode to {info.namespace}; run in {args.out}')
    return 0


def run_record(args) -> int:
    from siam_tracking_ros.bag import live
    count = live.record(args.namespace, args.out, args.duration, args.storage)
    print(f'recorded {count} messages to {args.out}')
    return 0


def _run_folders(paths) -> list[Path]:
    folders = []
    for path in paths:
        if (path / runlog.RUN_FILE).is_file():
            folders.append(path)
            continue
        found = sorted(p.parent for p in Path(path).rglob(runlog.RUN_FILE))
        if not found:
            raise runlog.RunLogError(f'{path} holds no replay run ({runlog.RUN_FILE} files)')
        folders += found
    return folders


def run_score(args) -> int:
    from siam_tracking_ros.bag import report, score
    runs = [run for folder in _run_folders(args.runs) for run in score.score_run_targets(folder)]
    result = report.write_report(args.out, runs, args.dataset_name)
    print(report.markdown(result))
    return 0


def run_eval(args) -> int:
    from siam_tracking_ros.bag import evaluate
    options = evaluate.EvalOptions(
        dataset=args.dataset, trackers=tuple(args.trackers), out_dir=args.out, mode=args.mode,
        sequences=tuple(args.sequences) if args.sequences else None, max_frames=args.max_frames, attach=args.attach,
        convert=_conversion_options(args), replay=_replay_options(args),
        profile=args.profile, node_parameters=tuple(args.node_param),
        weights=tuple(Path(path) for path in args.weights), resume=args.resume,
        workers=args.workers, progress=not args.quiet)
    evaluate.evaluate(options, log=lambda line: print(line, flush=True))
    return 0


COMMANDS = {'convert': run_convert, 'replay': run_replay, 'record': run_record,
            'score': run_score, 'eval': run_eval}


def _expected_errors() -> tuple[type, ...]:
    """Errors that report bad input or a failed run: printed as one line, no traceback."""
    from siam_tracking_ros.bag import nodes, report
    errors = [convert.ConversionError, reader.BagError, runlog.RunLogError, DatasetError,
              nodes.NodeStartError, report.ReportError, KeyError, FileNotFoundError]
    try:
        from siam_tracking_ros.bag import evaluate, live
    except ImportError:  # rclpy absent: convert and score still work
        return tuple(errors)
    return tuple(errors + [live.ReplayError, evaluate.EvaluationError])


def _interrupt_on_sigterm(_signum, _frame):
    raise KeyboardInterrupt


def run(args) -> int:
    if args.bag_command == 'eval' and args.attach is None:
        # The nodes eval starts run here: keep DDS traffic on this machine (unless the
        # environment says otherwise) and use the project's shared-memory profile for frames.
        from siam_tracking_ros.ros.process import use_local_ros_environment
        use_local_ros_environment()
    # SIGTERM unwinds like Ctrl-C, so node processes started by eval are stopped on the way out.
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        return COMMANDS[args.bag_command](args)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED
    except _expected_errors() as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f'error: {message}', file=sys.stderr)
        return EXIT_FAILURE
    finally:
        signal.signal(signal.SIGTERM, previous)
