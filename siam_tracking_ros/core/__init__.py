"""The tracking library: PyTorch + NumPy + OpenCV, no ROS import.

Entry points: ``build_tracker(name, ...)``, ``list_trackers()``, ``default_config(name)``; every
tracker follows ``SiameseTracker``'s ``init(image_bgr, box)`` / ``track(image_bgr)`` API.
"""
from siam_tracking_ros.core.device import resolve_device
from siam_tracking_ros.core.registry import (build_tracker, default_config, list_trackers,
                                             register_tracker)
from siam_tracking_ros.core.trackers.base import (CropGeometry, SiameseTracker, TrackerConfig,
                                                  TrackResult, TrackState)

__all__ = ['build_tracker', 'default_config', 'list_trackers', 'register_tracker',
           'resolve_device', 'CropGeometry', 'SiameseTracker', 'TrackerConfig', 'TrackResult',
           'TrackState']
