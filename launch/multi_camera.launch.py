"""One namespaced tracker_node per camera.

ros2 launch siam_tracking_ros multi_camera.launch.py cameras:=front,down \
    image_pattern:=/{camera}/image_raw profile:=uav

Camera `front` gets the node /front/tracker_node subscribing /front/image_raw (with the default
pattern) and publishing /front/detections; every node loads the same profile file.
"""

import os
import sys

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracker_common import declare_common_arguments, overrides, tracker_node  # noqa: E402


def camera_names(text: str) -> list:
    names = [name.strip() for name in text.split(',') if name.strip()]
    if not names:
        raise ValueError("cameras:= needs at least one camera name, e.g. cameras:=front,down")
    return names


def one_node_per_camera(context):
    pattern = LaunchConfiguration('image_pattern').perform(context)
    if '{camera}' not in pattern:
        raise ValueError(f"image_pattern '{pattern}' must contain '{{camera}}'")
    prefix = LaunchConfiguration('namespace').perform(context).rstrip('/')
    profile = LaunchConfiguration('profile').perform(context)
    return [tracker_node(f'{prefix}/{camera}', pattern.format(camera=camera), profile,
                         overrides(context))
            for camera in camera_names(LaunchConfiguration('cameras').perform(context))]


def generate_launch_description():
    common = [argument for argument in declare_common_arguments('uav', '')
              if argument.name != 'image']
    return LaunchDescription([
        DeclareLaunchArgument('cameras', default_value='front,down',
                              description='comma-separated camera names, one node each'),
        DeclareLaunchArgument('image_pattern', default_value='/{camera}/image_raw',
                              description='image topic of a camera; {camera} is its name'),
        *common,
        OpaqueFunction(function=one_node_per_camera),
    ])
