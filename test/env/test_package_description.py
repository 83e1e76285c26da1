"""The ROS package description is complete and consistent (colcon in `make setup` builds it)."""
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_package_xml_is_valid_format_3_with_runtime_dependencies():
    catkin_pkg = pytest.importorskip('catkin_pkg.package', reason='catkin_pkg comes with colcon-ros in .venv')
    package = catkin_pkg.parse_package(str(ROOT / 'package.xml'))
    package.validate()
    assert package.package_format == 3 and package.name == 'siam_tracking_ros'
    exec_deps = {d.name for d in package.exec_depends}
    for needed in ('rclpy', 'sensor_msgs', 'std_msgs', 'std_srvs', 'geometry_msgs', 'vision_msgs',
                   'launch_ros', 'python3-numpy', 'python3-opencv', 'python3-yaml'):
        assert needed in exec_deps, f'package.xml lacks <exec_depend>{needed}</exec_depend>'
    assert 'python3-pytest' in {d.name for d in package.test_depends}
    assert package.get_build_type() == 'ament_cmake'


def test_every_interface_file_is_generated():
    cmake = (ROOT / 'CMakeLists.txt').read_text()
    listed = set(re.findall(r'"((?:msg|srv)/\w+\.(?:msg|srv))"', cmake))
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / 'msg').glob('*.msg')}
    on_disk |= {str(p.relative_to(ROOT)) for p in (ROOT / 'srv').glob('*.srv')}
    assert listed == on_disk


def test_pip_only_vision_msgs_is_invisible_to_colcon_in_a_workspace():
    folder = ROOT / 'interfaces' / 'vision_msgs'
    assert (folder / 'msg' / 'Detection2DArray.msg').is_file()
    # colcon identifies packages by these names; with them absent a ROS workspace uses apt's vision_msgs.
    for marker in ('package.xml', 'CMakeLists.txt', 'setup.py'):
        assert not list(ROOT.joinpath('interfaces').rglob(marker)), f'{marker} under interfaces/'


def test_fastdds_profile_has_a_large_shared_memory_segment():
    tree = ET.parse(ROOT / 'config' / 'fastdds_local.xml')
    ns = {'d': 'http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles'}
    sizes = [int(e.text) for e in tree.getroot().iterfind('.//d:segment_size', ns)]
    # A 720p rgb8 frame is 2.7 MB; the segment must hold a queue of them.
    assert sizes and max(sizes) >= 32 * 1024 * 1024


def test_console_scripts_exist_for_the_pip_setup():
    setup_py = (ROOT / 'setup.py').read_text()
    for script in ('siamtrack = siam_tracking_ros.tools.cli:main',
                   'tracker_node = siam_tracking_ros.ros.tracker_node:main'):
        assert script in setup_py
    for script in ('tracker_node', 'siamtrack'):
        assert (ROOT / 'scripts' / script).is_file()
