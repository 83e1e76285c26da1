"""Starting and stopping a tracker_node process (demo, benchmark and tests share this)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILE_DIR = REPO_ROOT / 'config'
# What `make test` / `make demo` set; filled in only where the caller's environment lacks them,
# so DDS traffic stays on this machine.
LOCAL_ROS_ENVIRONMENT = {
    'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
    'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp',
    'FASTRTPS_DEFAULT_PROFILES_FILE': str(PROFILE_DIR / 'fastdds_local.xml'),
}


def use_local_ros_environment() -> None:
    """Set the local-only DDS settings in os.environ where they are not set already."""
    for name, value in LOCAL_ROS_ENVIRONMENT.items():
        if name != 'FASTRTPS_DEFAULT_PROFILES_FILE' or Path(value).is_file():
            os.environ.setdefault(name, value)


def tracker_node_command(namespace: str, profile: str, parameters: dict) -> list[str]:
    profile_file = PROFILE_DIR / f'{profile}.yaml'
    if not profile_file.is_file():
        raise ValueError(f"unknown profile '{profile}': {profile_file} does not exist")
    command = [sys.executable, '-m', 'siam_tracking_ros.ros.tracker_node', '--ros-args',
               '--params-file', str(profile_file), '-r', f'__ns:={namespace}']
    for name, value in parameters.items():
        command += ['-p', f'{name}:={value}']
    return command


def start_tracker_node(namespace: str, profile: str, parameters: dict,
                       log_file) -> subprocess.Popen:
    """tracker_node in ``namespace`` with the profile file and ``parameters`` on top; its
    output goes to ``log_file`` (an open file)."""
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH', '')]))
    env = dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED='1', RCUTILS_COLORIZED_OUTPUT='0')
    return subprocess.Popen(tracker_node_command(namespace, profile, parameters), cwd=REPO_ROOT,
                            env=env, stdout=log_file, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGINT (clean node shutdown), then terminate, then kill."""
    if process.poll() is not None:
        return
    for stop in (lambda: process.send_signal(signal.SIGINT), process.terminate, process.kill):
        stop()
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue
