"""Shared fixtures of the bag tests: a tiny plain-layout sequence written on the fly; for the
tests that start tracker nodes, a ROS domain of their own and a weights file.

The shared development data comes from the suite-wide `uav_dev` fixture (test/conftest.py).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from bag_sequences import write_plain_sequence
from worker_domains import worker_domain


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """A dataset folder with one 6-frame 320x240 sequence 'square' (frame 4 has no box)."""
    root = tmp_path / 'dataset'
    write_plain_sequence(root, 'square', 6, nan_frames=(3,))
    return root


@pytest.fixture(scope='module')
def isolated_ros_domain():
    """A domain of its own on this machine only, inherited by the node processes started
    (modules that start nodes use it: ``pytestmark = pytest.mark.usefixtures(...)``)."""
    saved = {key: os.environ.get(key) for key in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')}
    os.environ['ROS_DOMAIN_ID'] = str(worker_domain(150 + os.getpid() % 60, first=150, count=60))
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


NODE_TRACKER = 'siamfc_alexnet'


@pytest.fixture(scope='module')
def weights(tmp_path_factory) -> Path:
    """One weights file of NODE_TRACKER in the project format, given to both the node and the
    offline evaluation (the shipped weights where they exist, else seeded random ones)."""
    import torch
    from siam_tracking_ros.core.checkpoints import save_checkpoint
    from siam_tracking_ros.core.registry import build_tracker, default_config

    torch.manual_seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        tracker = build_tracker(NODE_TRACKER, device='cpu')
    return save_checkpoint(tmp_path_factory.mktemp('weights') / f'{NODE_TRACKER}.pth',
                           NODE_TRACKER, tracker.model, default_config(NODE_TRACKER),
                           {'data': 'random init (test)'})
