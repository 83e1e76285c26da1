"""The ``siamtrack`` console script: a dispatcher over subcommand modules.

Each subcommand lives in ``siam_tracking_ros/tools/cmd_<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``. Only the module of the subcommand being run is
imported, so a missing optional dependency of one subcommand (rosbags for ``bag``, say) does not
break the others.

Bad input (unknown names, missing files, invalid values) ends with a one-line message on stderr and
exit code 2, without a traceback; ``--traceback`` shows it anyway.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType
from typing import Sequence

PROGRAM = 'siamtrack'
EXIT_USAGE = 2
# Subcommand -> one-line summary for the top-level help.
SUBCOMMANDS = {
    'eval': 'one-pass evaluation of trackers on a dataset (success / precision, JSON, CSV, plots)',
    'bench': 'tracking speed of the registered trackers against OpenCV CSRT',
    'bag': 'rosbag conversion, replay, recording and scoring of the tracker node',
    'train': 'train a tracker network',
    'target': 'pick a target box on a frame and send it to a running tracker node',
    'synth': 'generate synthetic UAV-like sequences in UAV123 layout',
    'export': "write a tracker's weights in pysot's or siamfc-pytorch's checkpoint layout",
    'parity': 'run a reference tracker (pysot, siamfc-pytorch) beside the package, frame by frame',
}


# ------------------------------------------------------- argument types shared by subcommands
def names_list(text: str) -> list[str]:
    """Comma-separated names (empty items dropped); at least one."""
    names = [part.strip() for part in text.split(',') if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f'expected a comma-separated list of names, got {text!r}')
    return names


def int_at_least(minimum: int):
    """An argparse type: an integer no smaller than ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be at least {minimum}, got {value}')
        return value

    return parse


def frame_size(text: str) -> tuple[int, int]:
    """``WxH`` -> ``(W, H)``."""
    width, separator, height = text.lower().partition('x')
    if not separator or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f'size must be WIDTHxHEIGHT, e.g. 640x360, got {text!r}')
    return int(width), int(height)


# --------------------------------------------------------------- dispatch
class SubcommandUnavailable(RuntimeError):
    """The subcommand's module (or one of its dependencies) cannot be imported."""


def load_subcommand(name: str) -> ModuleType:
    """Import ``tools.cmd_<name>``, turning an import failure into a clear 'not available'."""
    module_name = f'siam_tracking_ros.tools.cmd_{name}'
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise SubcommandUnavailable(
                f"'{name}' is not available in this installation ({module_name} is missing)"
            ) from None
        raise SubcommandUnavailable(
            f"'{name}' is not available: it needs the Python module '{error.name}', which is not "
            'installed') from None
    for attribute in ('add_arguments', 'run'):
        if not callable(getattr(module, attribute, None)):
            raise SubcommandUnavailable(f"'{name}' is not available: {module_name} has no "
                                        f'{attribute}() function')
    return module


def _top_level_parser() -> argparse.ArgumentParser:
    summary = '\n'.join(f'  {name:<8}{text}' for name, text in SUBCOMMANDS.items())
    parser = argparse.ArgumentParser(
        prog=PROGRAM, formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Siamese single-object trackers: evaluation, benchmarks, training, ROS tools.',
        epilog=f'subcommands:\n{summary}\n\nRun "{PROGRAM} <subcommand> --help" for its options.')
    parser.add_argument('--traceback', action='store_true',
                        help='show the full traceback of an error instead of one line')
    parser.add_argument('subcommand', choices=list(SUBCOMMANDS), metavar='subcommand',
                        help=', '.join(SUBCOMMANDS))
    parser.add_argument('arguments', nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _error_text(error: BaseException) -> str:
    # KeyError's str() quotes its message; show the message itself.
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return ' '.join(str(text).split()) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    top = _top_level_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    name = top.subcommand
    try:
        module = load_subcommand(name)
    except SubcommandUnavailable as error:
        print(f'{PROGRAM}: error: {error}', file=sys.stderr)
        return EXIT_USAGE
    parser = argparse.ArgumentParser(prog=f'{PROGRAM} {name}', description=SUBCOMMANDS[name])
    module.add_arguments(parser)
    args = parser.parse_args(top.arguments)
    try:
        return int(module.run(args) or 0)
    except (ValueError, LookupError, OSError) as error:
        if top.traceback:
            raise
        print(f'{PROGRAM} {name}: error: {_error_text(error)}', file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f'{PROGRAM} {name}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
