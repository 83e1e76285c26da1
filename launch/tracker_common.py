"""Shared pieces of the tracker launch files (imported by them from this folder).

The nodes load the same YAML profiles (config/<profile>.yaml in the package share directory)
that `tracker_node --ros-args --params-file config/<profile>.yaml` uses, so one configuration
serves a ROS install and the pip environment. Command-line overrides apply on top of the file
only when given (an empty argument keeps the profile's value).

A profile without a file fails the launch (exit 1) naming the profiles there are, and so does a
node that exits with an error: launch_ros alone would only warn, start the node on code defaults
and exit 0.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = 'siam_tracking_ros'
OVERRIDABLE = ('tracker', 'weights', 'device')


def profile_directory() -> str:
    return os.path.join(get_package_share_directory(PACKAGE), 'config')


def available_profiles() -> list:
    """Names of the parameter profiles installed with the package (config/<name>.yaml)."""
    return sorted(name[:-len('.yaml')] for name in os.listdir(profile_directory())
                  if name.endswith('.yaml'))


def profile_file(profile: str) -> str:
    path = os.path.join(profile_directory(), f'{profile}.yaml')
    if not os.path.isfile(path):
        raise ValueError(f"unknown profile '{profile}': the profiles are "
                         f"{', '.join(available_profiles())} (config/<profile>.yaml)")
    return path


def declare_common_arguments(default_profile: str, default_image: str) -> list:
    return [
        DeclareLaunchArgument('image', default_value=default_image,
                              description='camera image topic the node subscribes to'),
        DeclareLaunchArgument('tracker', default_value='',
                              description='registry name of the tracker (empty: profile value)'),
        DeclareLaunchArgument('weights', default_value='',
                              description='checkpoint path (empty: profile value)'),
        DeclareLaunchArgument('device', default_value='',
                              description="'auto', 'cpu', 'cuda:N' (empty: profile value)"),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the node and its topics'),
        DeclareLaunchArgument('profile', default_value=default_profile,
                              choices=available_profiles(),
                              description='parameter profile (config/<profile>.yaml)'),
    ]


def overrides(context) -> dict:
    """Launch arguments given a value, as parameters overriding the profile file."""
    values = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDABLE}
    return {name: value for name, value in values.items() if value}


def fail_on_error_exit(event, _context) -> None:
    """on_exit of a node: an exit with an error code fails the whole launch."""
    if event.returncode != 0:
        raise RuntimeError(f'{event.process_name} exited with code '
                           f'{event.returncode}; see its output above')


def tracker_node(namespace: str, image_topic: str, profile: str, parameter_overrides: dict):
    return Node(package=PACKAGE, executable='tracker_node', name='tracker_node',
                namespace=namespace, output='screen', on_exit=fail_on_error_exit,
                parameters=[profile_file(profile), parameter_overrides],
                remappings=[('image', image_topic), ('image/compressed',
                                                     image_topic + '/compressed')])


def single_node(context):
    return [tracker_node(LaunchConfiguration('namespace').perform(context),
                         LaunchConfiguration('image').perform(context),
                         LaunchConfiguration('profile').perform(context),
                         overrides(context))]


def single_node_launch(default_profile: str, default_image: str) -> list:
    return [*declare_common_arguments(default_profile, default_image),
            OpaqueFunction(function=single_node)]
