"""ROS domains per pytest-xdist worker (`make test` runs two workers): nodes started by one
worker never discover another worker's, while each worker's tests share its domain."""
import os

# This worker's index and the number of workers (a plain `pytest` run is worker 0 of 1).
WORKER_INDEX = int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0').removeprefix('gw'))
WORKER_COUNT = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))


def worker_domain(base: int, first: int = 1, count: int = 100, worker: int = WORKER_INDEX,
                  workers: int = WORKER_COUNT) -> int:
    """A domain in ``first .. first + count - 1`` for ``base``, in the slice of that range that
    belongs to ``worker`` alone (a single process keeps ``base`` itself when it is in range)."""
    slice_size = count // workers
    if slice_size < 1:
        raise ValueError(f'{workers} workers cannot have domains of their own among {count}')
    return first + (base - first) % slice_size + worker * slice_size
