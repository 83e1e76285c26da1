"""What one replay run leaves on disk, and reading it back.

A run folder holds:

* ``run.json``: which bag, tracker, namespace, mode and initial box the run used (for a
  multi-target run also ``targets``: each target id with its initial box, in the order set);
* ``frames.csv``: every frame published (bag index, stamp in the bag, stamp it was published
  with, wall time of publishing);
* ``detections.csv``: every ``Detection2DArray`` received (header stamp, receipt time, box as
  0-based ``x, y, w, h`` or empty when the node reported no target, score). A multi-target run
  has one row per array and target, with a ``target_id`` column: the box of the array's
  detection with that id, empty when it has none (target lost, or not reported);
* ``status.csv``: every ``TrackerStatus`` received;
* ``record/``: the same detections and status messages as a rosbag2 (written by the recorder).

Times are integer nanoseconds of the system clock, which the node stamps and the replay
publishes with, so ``receipt - stamp`` is the end-to-end latency.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

RUN_FILE = 'run.json'
FRAMES_FILE = 'frames.csv'
DETECTIONS_FILE = 'detections.csv'
STATUS_FILE = 'status.csv'
RECORD_BAG = 'record'
MODES = ('realtime', 'lockstep')
# How the CSV columns of each field type are read back (any other type: float).
_COLUMN_TYPES = {'int': int, int: int, 'str': str, str: str}


class RunLogError(ValueError):
    """A run folder that is missing files or holds inconsistent records."""


@dataclass(frozen=True)
class PublishedFrame:
    index: int
    source_stamp_ns: int
    stamp_ns: int
    publish_ns: int


@dataclass(frozen=True)
class ReceivedDetection:
    stamp_ns: int
    receipt_ns: int
    # 0-based x, y, w, h; NaN when the array was empty (target lost or tracker idle).
    x: float
    y: float
    w: float
    h: float
    score: float
    # Multi-target runs only: the target the row is for ('' in a single-target run).
    target_id: str = ''

    @property
    def has_box(self) -> bool:
        return all(math.isfinite(value) for value in (self.x, self.y, self.w, self.h))

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.w, self.h)


@dataclass(frozen=True)
class ReceivedStatus:
    stamp_ns: int
    receipt_ns: int
    state: int
    score: float
    fps: float
    latency_ms: float
    frames_skipped: int


@dataclass(frozen=True)
class RunInfo:
    bag: str
    sequence: str
    tracker: str
    namespace: str
    mode: str
    rate: float
    # The box the target was initialised with (a multi-target run: the first target's).
    init_box: tuple[float, float, float, float]
    frame_timeout_s: float = 0.0
    # Multi-target runs: (target id, initial box) of every target, in the order they were set;
    # empty for a single-target run.
    targets: tuple[tuple[str, tuple[float, float, float, float]], ...] = ()

    def __post_init__(self):
        if self.mode not in MODES:
            raise RunLogError(f"mode must be one of {', '.join(MODES)}, got '{self.mode}'")

    @property
    def target_ids(self) -> tuple[str, ...]:
        return tuple(target_id for target_id, _ in self.targets)


# Columns written only when a run has them (absent ones read back as the field's default).
OPTIONAL_COLUMNS = ('target_id',)


def _write_rows(path: Path, row_type, rows, omit=()) -> None:
    names = [f.name for f in fields(row_type) if f.name not in omit]
    with path.open('w', newline='') as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for row in rows:
            writer.writerow([getattr(row, name) for name in names])


def _read_rows(path: Path, row_type) -> list:
    if not path.is_file():
        raise RunLogError(f'run file {path} is missing')
    converters = {f.name: _COLUMN_TYPES.get(f.type, float) for f in fields(row_type)}
    with path.open(newline='') as handle:
        reader = csv.DictReader(handle)
        present = set(reader.fieldnames or ())
        missing = set(converters) - present - set(OPTIONAL_COLUMNS)
        if missing:
            raise RunLogError(f'{path} lacks the columns {", ".join(sorted(missing))}')
        converters = {name: convert for name, convert in converters.items() if name in present}
        try:
            return [row_type(**{name: convert(row[name]) for name, convert in converters.items()})
                    for row in reader]
        except ValueError as error:
            raise RunLogError(f'{path} holds a malformed row: {error}') from error


def write_info(run_dir: Path, info: RunInfo) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    content = asdict(info)
    # {id: box}; a single-target run's run.json stays as it was before targets existed.
    content['targets'] = {target_id: list(box) for target_id, box in info.targets}
    if not info.targets:
        del content['targets']
    (run_dir / RUN_FILE).write_text(json.dumps(content, indent=2) + '\n')


def read_info(run_dir: Path) -> RunInfo:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise RunLogError(f'{run_dir} is not a replay run folder (no {RUN_FILE})')
    try:
        content = json.loads(path.read_text())
        content['init_box'] = tuple(content['init_box'])
        content['targets'] = tuple((str(target_id), tuple(float(v) for v in box))
                                   for target_id, box in content.get('targets', {}).items())
        return RunInfo(**content)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise RunLogError(f'{path} is malformed: {error}') from error


def write_frames(run_dir: Path, frames) -> None:
    _write_rows(Path(run_dir) / FRAMES_FILE, PublishedFrame, frames)


def write_detections(run_dir: Path, detections, by_target: bool = False) -> None:
    """``by_target``: a multi-target run's rows, written with their target_id column."""
    _write_rows(Path(run_dir) / DETECTIONS_FILE, ReceivedDetection, detections,
                omit=() if by_target else OPTIONAL_COLUMNS)


def write_statuses(run_dir: Path, statuses) -> None:
    _write_rows(Path(run_dir) / STATUS_FILE, ReceivedStatus, statuses)


def read_frames(run_dir: Path) -> list[PublishedFrame]:
    return _read_rows(Path(run_dir) / FRAMES_FILE, PublishedFrame)


def read_detections(run_dir: Path) -> list[ReceivedDetection]:
    return _read_rows(Path(run_dir) / DETECTIONS_FILE, ReceivedDetection)


def read_statuses(run_dir: Path) -> list[ReceivedStatus]:
    return _read_rows(Path(run_dir) / STATUS_FILE, ReceivedStatus)
