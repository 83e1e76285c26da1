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
spinning thread sleeps briefly instead, releasing the GIL to the threads that do the work.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

from rclpy.executors import (ConditionReachedException, ExternalShutdownException,
                             MultiThreadedExecutor, ShutdownException, TimeoutException)

# How long the spinning thread sleeps when the only ready work is a task already queued for
# the pool: long enough to hand the GIL to a pool thread, short against a camera frame.
QUEUED_TASK_WAIT_S = 0.0005


class OnceSubmittedExecutor(MultiThreadedExecutor):
    """``MultiThreadedExecutor`` that submits a ready task to its pool once per wake-up."""

    def __init__(self, num_threads: int, *, context=None):
        super().__init__(num_threads=num_threads, context=context)
        self._pool = ThreadPoolExecutor(num_threads, thread_name_prefix='ros_callbacks')
        self._queued: set = set()  # submitted tasks no pool thread has started yet
        self._queued_lock = threading.Lock()
        self._submitted: list = []  # submitted tasks not yet seen done

    def _run_queued(self, task) -> None:
        with self._queued_lock:
            self._queued.discard(task)
        task()

    def _spin_once_impl(self, timeout_sec: Optional[float] = None,
                        wait_condition: Callable[[], bool] = lambda: False) -> None:
        try:
            task, _, _ = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
        except (ExternalShutdownException, ShutdownException, TimeoutException,
                ConditionReachedException):
            return
        with self._queued_lock:
            already_queued = task in self._queued
            if not already_queued:
                self._queued.add(task)
        if already_queued:
            time.sleep(QUEUED_TASK_WAIT_S)
        else:
            self._pool.submit(self._run_queued, task)
            self._submitted.append(task)
        self._raise_finished_errors()

    def _raise_finished_errors(self) -> None:
        """Forget finished tasks; re-raise an exception one of them ended with (as rclpy does)."""
        finished = [task for task in self._submitted if task.done()]
        for task in finished:
            self._submitted.remove(task)
        for task in finished:
            task.result()

    def shutdown(self, timeout_sec: Optional[float] = None) -> bool:
        done = super().shutdown(timeout_sec)
        self._pool.shutdown(wait=True)
        return done
