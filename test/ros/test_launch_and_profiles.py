"""Launch files and the parameter profiles they load, checked statically.

They compile, every argument they declare is read, and every profile they name exists and is a
valid ROS parameters file for tracker_node. These checks need no `launch` package;
test_launch_files.py starts the launch files for real where ../shared/ros_src provides it.
"""

import ast
import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from siam_tracking_ros.ros.parameters import PARAMETERS, check_parameters

REPO_ROOT = Path(__file__).resolve().parents[2]
LAUNCH_DIR = REPO_ROOT / 'launch'
LAUNCH_FILES = sorted(LAUNCH_DIR.glob('*.launch.py'))
PROFILE_CALLS = ('single_node_launch', 'declare_common_arguments')


def launch_sources(path: Path) -> list[ast.Module]:
    """The launch file and the local modules of launch/ it imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    trees = [tree]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (LAUNCH_DIR / f'{node.module}.py').is_file():
            local = LAUNCH_DIR / f'{node.module}.py'
            trees.append(ast.parse(local.read_text(), filename=str(local)))
    return trees


def first_string_args(trees, function_names) -> set[str]:
    found = set()
    for tree in trees:
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and getattr(node.func, 'id', None) in function_names
                    and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                found.add(node.args[0].value)
    return found


def used_configurations(trees) -> set[str]:
    """Names read with LaunchConfiguration('name') or looked up from a tuple of names."""
    used = first_string_args(trees, ('LaunchConfiguration',))
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if 'OVERRIDABLE' in targets:
                    used |= {e.value for e in node.value.elts if isinstance(e, ast.Constant)}
    return used


def test_there_are_the_three_launch_files():
    assert {p.name for p in LAUNCH_FILES} == {
        'uav_tracker.launch.py', 'vehicle_tracker.launch.py', 'multi_camera.launch.py'}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_compiles_and_uses_every_argument(path, tmp_path):
    py_compile.compile(str(path), cfile=str(tmp_path / 'out.pyc'), doraise=True)
    trees = launch_sources(path)
    assert any(isinstance(n, ast.FunctionDef) and n.name == 'generate_launch_description'
               for n in ast.walk(trees[0]))
    declared = first_string_args(trees, ('DeclareLaunchArgument',))
    if path.name == 'multi_camera.launch.py':
        declared.discard('image')  # the shared declaration is filtered out there
        assert {'cameras', 'image_pattern'} <= declared
    else:
        assert {'image', 'tracker', 'weights', 'device', 'namespace', 'profile'} <= declared
    unused = declared - used_configurations(trees)
    assert not unused, f'{path.name} declares arguments it never reads: {sorted(unused)}'


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_profiles_named_by_launch_files_exist(path):
    profiles = first_string_args(launch_sources(path), PROFILE_CALLS)
    assert profiles, f'{path.name} names no profile'
    for profile in profiles:
        assert (REPO_ROOT / 'config' / f'{profile}.yaml').is_file()


def profile_parameters(profile: str) -> dict:
    document = yaml.safe_load((REPO_ROOT / 'config' / f'{profile}.yaml').read_text())
    assert list(document) == ['/**/tracker_node'], 'one section for tracker_node in any namespace'
    section = document['/**/tracker_node']
    assert list(section) == ['ros__parameters']
    return section['ros__parameters']


@pytest.mark.parametrize('profile', ['uav', 'vehicle'])
def test_profile_is_a_valid_params_file_for_the_node(profile):
    parameters = profile_parameters(profile)
    unknown = set(parameters) - set(PARAMETERS)
    assert not unknown, f'unknown parameters in {profile}.yaml: {unknown}'
    for name, value in parameters.items():
        assert type(value) is type(PARAMETERS[name].default), f'{name}: wrong type'
    defaults = {name: spec.default for name, spec in PARAMETERS.items()}
    assert check_parameters(parameters, defaults) is None
    assert parameters['profile'] == profile


def test_every_value_that_differs_between_profiles_is_explained():
    uav, vehicle = profile_parameters('uav'), profile_parameters('vehicle')
    assert set(uav) == set(vehicle)
    differing = [name for name in uav if uav[name] != vehicle[name] and name != 'profile']
    assert differing
    for profile in ('uav', 'vehicle'):
        lines = (REPO_ROOT / 'config' / f'{profile}.yaml').read_text().splitlines()
        for name in differing:
            index = next(i for i, line in enumerate(lines) if line.strip().startswith(f'{name}:'))
            assert lines[index - 1].strip().startswith('#'), f'{profile}.yaml: {name} unexplained'


@pytest.mark.parametrize('program', ['tracker_node', 'siamtrack'])
def test_installed_executables_run_with_the_interpreter_they_were_built_for(program):
    """`ros2 run` / launch start lib/siam_tracking_ros/<program> directly: its first line must
    name this environment's Python, not whatever `python3` is first on PATH."""
    packages = pytest.importorskip('ament_index_python.packages',
                                   reason='ament_index_python comes with the ROS wheels')
    try:
        prefix = Path(packages.get_package_prefix('siam_tracking_ros'))
    except packages.PackageNotFoundError:
        pytest.skip('siam_tracking_ros is not built (colcon): run `make setup`')
    installed = prefix / 'lib' / 'siam_tracking_ros' / program
    assert installed.read_text().splitlines()[0] == f'#!{sys.executable}'
    if program == 'siamtrack':  # runs with a PATH that holds no venv
        result = subprocess.run([str(installed), '--help'], capture_output=True, text=True,
                                env={'PATH': '/usr/bin:/bin', 'HOME': os.environ.get('HOME', '/')},
                                timeout=120)
        assert result.returncode == 0 and 'usage: siamtrack' in result.stdout, result.stderr
