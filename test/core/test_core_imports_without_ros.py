import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

BLOCKED_IMPORT = r'''
import importlib.abc
import sys


class BlockRos(importlib.abc.MetaPathFinder):
    """Makes rclpy, rosidl* and every *_msgs / *_srvs module impossible to import."""

    def find_spec(self, name, path=None, target=None):
        top = name.split('.')[0]
        if top == 'rclpy' or top.startswith('rosidl') or top.endswith(('_msgs', '_srvs')):
            raise ImportError(f'ROS import blocked: {name}')
        return None


sys.meta_path.insert(0, BlockRos())
try:
    import rclpy  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit('the blocker failed: rclpy imported')

import siam_tracking_ros.core
import siam_tracking_ros.core.checkpoints
import siam_tracking_ros.core.crop
from siam_tracking_ros.core import build_tracker, list_trackers

assert 'siamrpn_r50_l234' in list_trackers()
leaked = [m for m in sys.modules if m.split('.')[0] == 'rclpy' or m.endswith('_msgs')]
assert not leaked, leaked
print('core imported without ROS')
'''


def test_core_imports_with_ros_blocked():
    completed = subprocess.run([sys.executable, '-c', BLOCKED_IMPORT], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=120,
                               env={'PYTHONPATH': str(REPO_ROOT), 'PATH': '/usr/bin:/bin'})
    assert completed.returncode == 0, completed.stderr
    assert 'core imported without ROS' in completed.stdout
