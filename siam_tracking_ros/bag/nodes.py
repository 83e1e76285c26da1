"""Tracker node processes of an evaluation, and making sure they end.

Each node runs in its own namespace with its output going to a log file; starting and stopping
use the project's shared helpers (:mod:`siam_tracking_ros.ros.process`). :class:`NodeProcesses`
stops every node it started when its ``with`` block ends, whatever ended it (normal end,
error, Ctrl-C).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from siam_tracking_ros.ros.process import start_tracker_node, stop_process

NODE_MODULE = 'siam_tracking_ros.ros.tracker_node'
# How long a node gets to exit after each of SIGINT, SIGTERM before the next, harder, signal.
STOP_GRACE_S = 5.0


class NodeStartError(RuntimeError):
    """A node process that could not be started."""


@dataclass(frozen=True)
class NodeSpec:
    tracker: str
    namespace: str
    # Parameter file config/<profile>.yaml the node starts from.
    profile: str = 'uav'
    # Extra ``name:=value`` parameters on top of the profile, e.g. ``device:=cpu``.
    parameters: tuple[str, ...] = field(default_factory=tuple)

    def parameter_values(self) -> dict[str, str]:
        values = {}
        for parameter in self.parameters:
            name, separator, value = parameter.partition(':=')
            if not separator or not name.strip():
                raise NodeStartError(f"node parameter '{parameter}' is not of the form name:=value")
            values[name.strip()] = value
        values['tracker'] = self.tracker
        return values


class NodeProcess:
    def __init__(self, spec: NodeSpec, log_path: Path):
        self.spec = spec
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open('wb')
        try:
            self.process = start_tracker_node(spec.namespace, spec.profile,
                                              spec.parameter_values(), self._log)
        except (OSError, ValueError) as error:
            self._log.close()
            raise NodeStartError(f'cannot start the {spec.tracker} node: {error}') from error

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        """Raise with the end of its log when the node has exited."""
        code = self.process.poll()
        if code is not None:
            raise NodeStartError(f'the {self.spec.tracker} node at {self.spec.namespace} exited '
                                 f'with code {code}; end of {self.log_path}:\n{self.log_tail()}')

    def log_tail(self, lines: int = 15) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors='replace').splitlines()
        return '\n'.join(text[-lines:])

    def stop(self) -> int | None:
        """Stop the node (SIGINT, then SIGTERM, then SIGKILL); returns its exit code."""
        try:
            stop_process(self.process, grace_s=STOP_GRACE_S)
            return self.process.wait()
        finally:
            self._log.close()


class NodeProcesses:
    """The node processes of one evaluation; all are stopped when the ``with`` block exits."""

    def __init__(self):
        self.started: list[NodeProcess] = []

    def start(self, spec: NodeSpec, log_path: Path) -> NodeProcess:
        node = NodeProcess(spec, log_path)
        self.started.append(node)
        return node

    def stop(self, node: NodeProcess) -> None:
        if node in self.started:
            self.started.remove(node)
            node.stop()

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()
