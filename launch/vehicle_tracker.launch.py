"""One tracker_node for a vehicle camera (profile config/vehicle.yaml).

ros2 launch siam_tracking_ros vehicle_tracker.launch.py image:=/front_camera/image_raw
"""

import os
import sys

from launch import LaunchDescription

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracker_common import single_node_launch  # noqa: E402


def generate_launch_description():
    return LaunchDescription(single_node_launch('vehicle', '/front_camera/image_raw'))
