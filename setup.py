"""Description of the Python package `siam_tracking_ros`.

colcon builds the ROS package through CMakeLists.txt (ament_cmake + ament_cmake_python), which
also generates the message and service modules. This file describes the same Python package for
pip (console scripts `siamtrack` and `tracker_node`, package data such as the shipped weights).
"""
from setuptools import find_packages, setup

setup(
    name='siam_tracking_ros',
    version='0.1.0',
    description='Siamese single-object trackers for ROS 2 UAV and vehicle cameras',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['siam_tracking_ros', 'siam_tracking_ros.*']),
    package_data={'siam_tracking_ros': ['data/weights/*.pth', 'data/*.yaml']},
    install_requires=[
        'numpy', 'opencv-contrib-python-headless', 'torch', 'PyYAML', 'tqdm', 'matplotlib',
        'scipy', 'rosbags',
    ],
    entry_points={
        'console_scripts': [
            'siamtrack = siam_tracking_ros.tools.cli:main',
            'tracker_node = siam_tracking_ros.ros.tracker_node:main',
        ],
    },
)
