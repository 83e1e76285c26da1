"""A multi-threaded rclpy executor that hands each ready callback to its threads once.

Jazzy's ``MultiThreadedExecutor`` (rclpy 7.1) gives a callback to its thread pool and, until a
pool thread has started it, finds the same task "in progress but not executing" on its next pass
and submits it again, without waiting. The spinning thread then loops at full speed holding the
GIL, so the pool threads that would start the callbacks, and any other Python thread of the
process (the node's tracking thread), wait for the interpreter. Measured on the node with a
100 Hz camera on two cores: the spinning thread used 0.9 of a core and the tracker ran at 1-3
frames a second instead of 20-30; frames waited seconds to be taken. (Later rclpy releases stop
re-yielding such tasks.)

:class:`OnceSubmittedExecutor` keeps the executor's behaviour otherwise: callback groups,
coroutine callbacks resumed when they wait, exceptions of a callback raised in the spinning
thread. A task found again while it still waits for a pool thread is not submitted twice: the
spinning thread waits, without the GIL, until a pool thread has taken it. Every callback runs in
the pool, so while all of its threads are busy there is nothing else to start.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

from rclpy.executors import (ConditionReachedException, ExternalShutdownException,
                             MultiThreadedExecutor, ShutdownException, TimeoutException)

# The longest the spinning thread waits for a pool thread to take a queued task before it looks
# again (it also checks for shutdown and, in the node, for signals between spins).
QUEUED_TASK_WAIT_S = 0.05


class OnceSubmittedExecutor(MultiThreadedExecutor):
    """``MultiThreadedExecutor`` that submits a ready task to its pool once per wake-up."""

    def __init__(self, num_threads: int, *, context=None):
        super().__init__(num_threads=num_threads, context=context)
        # The pool (``_executor``) and the list of submitted tasks (``_futures``) are the parent's,
        # so that shutdown and the collection of finished tasks stay as rclpy has them.
        self._queued: set = set()  # submitted tasks no pool thread has started yet
        self._task_taken = threading.Condition()

    def _run_queued(self, task) -> None:
        with self._task_taken:
            self._queued.discard(task)
            self._task_taken.notify_all()
        task()

    def _spin_once_impl(self, timeout_sec: Optional[float] = None,
                        wait_condition: Callable[[], bool] = lambda: False) -> None:
        try:
            task, _, _ = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
        except (ExternalShutdownException, ShutdownException, TimeoutException,
                ConditionReachedException):
            return
        with self._task_taken:
            already_queued = task in self._queued
            if already_queued:
                self._task_taken.wait_for(lambda: task not in self._queued, QUEUED_TASK_WAIT_S)
            else:
                self._queued.add(task)
        if not already_queued:
            self._executor.submit(self._run_queued, task)
            self._futures.append(task)
        self._raise_finished_errors()

    def _raise_finished_errors(self) -> None:
        """Forget finished tasks; re-raise an exception one of them ended with (as rclpy does)."""
        finished = [task for task in self._futures if task.done()]
        for task in finished:
            self._futures.remove(task)
        for task in finished:
            task.result()
