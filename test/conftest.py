"""Settings shared by the whole suite.

`make test` sets the ROS environment; these defaults make a plain `pytest` run behave the same:
DDS traffic stays on this machine, on a domain of its own (one per xdist worker), with the
project's Fast DDS profile.
Subprocesses started by tests inherit os.environ.
"""
import os
import random
from pathlib import Path

import pytest

from worker_domains import worker_domain

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = (REPO_ROOT / '..' / 'shared').resolve()

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ['ROS_DOMAIN_ID'] = str(worker_domain(
    int(os.environ.get('ROS_DOMAIN_ID') or random.Random(os.getpid()).randint(1, 100))))
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
os.environ.setdefault('FASTRTPS_DEFAULT_PROFILES_FILE', str(REPO_ROOT / 'config' / 'fastdds_local.xml'))
# Tests share 2 cores with the processes they start.
os.environ.setdefault('OMP_NUM_THREADS', '1')


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO_ROOT


def shared_path(*parts: str) -> Path:
    """A folder of ../shared, or a skip saying it is absent (it is, on users' machines)."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f'{path} is absent: this test needs the development data in ../shared/{"/".join(parts)}')
    return path


@pytest.fixture(scope='session')
def uav_dev() -> Path:
    return shared_path('uav_dev')


@pytest.fixture(scope='session')
def shared_train() -> Path:
    return shared_path('train')
