"""Shared fixtures of the bag tests: a tiny plain-layout sequence written on the fly.

The shared development data comes from the suite-wide `uav_dev` fixture (test/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bag_sequences import write_plain_sequence


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """A dataset folder with one 6-frame 320x240 sequence 'square' (frame 4 has no box)."""
    root = tmp_path / 'dataset'
    write_plain_sequence(root, 'square', 6, nan_frames=(3,))
    return root
