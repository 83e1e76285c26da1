"""One tracker_node for a drone camera (profile config/uav.yaml).

ros2 launch siam_tracking_ros uav_tracker.launch.py image:=/camera/image_raw \
    tracker:=siamfc_alexnet
"""

import os
import sys

from launch import LaunchDescription

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracker_common import single_node_launch  # noqa: E402


def generate_launch_description():
    return LaunchDescription(single_node_launch('uav', '/camera/image_raw'))
