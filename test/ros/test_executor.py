"""OnceSubmittedExecutor: a callback waiting for a pool thread is handed to the pool once."""

import threading
import time

import pytest

rclpy = pytest.importorskip('rclpy', reason='rclpy is missing: run `make setup`')

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup  # noqa: E402

from siam_tracking_ros.ros.executor import OnceSubmittedExecutor  # noqa: E402


@pytest.fixture
def one_thread_executor():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('once_submitted_executor_test', context=context)
    executor = OnceSubmittedExecutor(num_threads=1, context=context)
    executor.add_node(node)
    submitted = []
    submit = executor._executor.submit

    def counting_submit(function, task):
        submitted.append(task)
        return submit(function, task)

    executor._executor.submit = counting_submit
    yield node, executor, submitted
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def spin_until(executor, condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.01)
    return condition()


def test_a_callback_waiting_for_the_busy_pool_is_submitted_once_and_runs_once(
        one_thread_executor):
    node, executor, submitted = one_thread_executor
    started, release, ran = threading.Event(), threading.Event(), []
    timers = {}

    def once(name, then=lambda: None):
        def callback():
            timers[name].cancel()
            then()
            ran.append(name)
        return callback

    def block():
        started.set()
        release.wait(10)

    timers['blocking'] = node.create_timer(0.001, once('blocking', block),
                                           MutuallyExclusiveCallbackGroup())
    assert spin_until(executor, started.is_set), 'the first callback never started'
    timers['second'] = node.create_timer(0.001, once('second'), MutuallyExclusiveCallbackGroup())
    # The pool's only thread is busy: the second callback's task is found ready on every pass.
    for _ in range(50):
        executor.spin_once(timeout_sec=0.01)
    assert len(submitted) == 2, f'{len(submitted)} submissions for two callbacks'
    release.set()
    assert spin_until(executor, lambda: len(ran) == 2)
    for _ in range(10):
        executor.spin_once(timeout_sec=0.01)
    assert ran == ['blocking', 'second'] and len(submitted) == 2


def test_an_exception_in_a_callback_reaches_the_spinning_thread(one_thread_executor):
    node, executor, _ = one_thread_executor

    def failing():
        raise RuntimeError('callback failed')

    node.create_timer(0.001, failing, MutuallyExclusiveCallbackGroup())
    with pytest.raises(RuntimeError, match='callback failed'):
        for _ in range(200):
            executor.spin_once(timeout_sec=0.01)
