#!/usr/bin/env bash
# Sets up .venv/ on a machine without ROS: ROS 2 Jazzy from PyPI wheels, torch, OpenCV and the rest
# of requirements.lock; vision_msgs and this package built with colcon as a ROS user would; console
# scripts and message modules usable from .venv/bin without sourcing anything.
# Idempotent; `make setup` only calls it when one of its inputs changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
PYTHON="${PYTHON:-python3}"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

if [ ! -x "$PY" ]; then
  step "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

step "installing pinned Python dependencies (requirements.lock)"
"$PY" -m pip install --quiet --disable-pip-version-check 'setuptools==79.0.1' 'wheel==0.48.0'
"$PY" -m pip install --quiet --disable-pip-version-check -r requirements.lock

step "pointing the ROS wheels' CMake files at this machine's Python and numpy"
# The wheels' exported CMake files name the include dirs of the container they were built in.
PY_INCLUDE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NP_INCLUDE="$("$PY" -c 'import numpy; print(numpy.get_include())')"
{ grep -rlF --include='*.cmake' /opt/python/ "$VENV/share" 2>/dev/null || true; } | xargs -r sed -i \
  -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NP_INCLUDE#g" \
  -e "s#/opt/python/cp311-cp311/include/python3.11#$PY_INCLUDE#g"
if grep -rqF --include='*.cmake' /opt/python/ "$VENV/share" 2>/dev/null; then
  echo "error: CMake files in $VENV/share still name /opt/python paths this script does not know:" >&2
  grep -rhoF --include='*.cmake' /opt/python/ "$VENV/share" | sort -u | head >&2
  exit 1
fi

step "staging vision_msgs (pip environment only)"
# Kept without package.xml in the repository so a ROS workspace never discovers it.
STAGE="$ROOT/build/vision_msgs_src/vision_msgs"
rm -rf "$STAGE"
mkdir -p "$STAGE"
cp -r interfaces/vision_msgs/msg "$STAGE/"
cp interfaces/vision_msgs/package.xml.in "$STAGE/package.xml"
cp interfaces/vision_msgs/CMakeLists.txt.in "$STAGE/CMakeLists.txt"

step "colcon build (vision_msgs, siam_tracking_ros)"
# The package is built through a workspace link build/ws/src/siam_tracking_ros -> repository root,
# as it sits in a user's ws/src. Building the root directly would make CMake refuse the venv's
# numpy include directory, which then lies inside the source directory.
mkdir -p "$ROOT/build/ws/src"
ln -sfn ../../.. "$ROOT/build/ws/src/siam_tracking_ros"
# AMENT_PREFIX_PATH must name the venv, where the wheels put their ament index.
# shellcheck disable=SC2097,SC2098
AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/colcon" \
  --log-base "$ROOT/build/colcon_log" build \
  --base-paths "$ROOT/build/ws/src/siam_tracking_ros" "$ROOT/build/vision_msgs_src" \
  --build-base "$ROOT/build/colcon" --install-base "$ROOT/install" --merge-install \
  --event-handlers console_start_end+ \
  --cmake-args -DBUILD_TESTING=OFF "-DPython3_EXECUTABLE=$PY" -DCMAKE_BUILD_TYPE=Release

step "making the build usable from .venv without sourcing"
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
mkdir -p "$VENV/siam_tracking_ros_source"
ln -sfn "$ROOT/siam_tracking_ros" "$VENV/siam_tracking_ros_source/siam_tracking_ros"
sed -e "s#@ROOT@#$ROOT#g" scripts/venv_ros_env.py.in > "$SITE/_siam_tracking_ros_env.py"
# Runs before ros_wheels_bootstrapper.pth (alphabetical), which re-executes Python with
# LD_LIBRARY_PATH extended: the paths set here are kept in that re-execution.
echo 'import _siam_tracking_ros_env' > "$SITE/00_siam_tracking_ros_env.pth"
"$PY" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  --config-settings editable_mode=compat -e "$ROOT"

step "checking the environment"
"$PY" -c "import rclpy, vision_msgs.msg, siam_tracking_ros.msg, siam_tracking_ros.srv, torch, cv2; print('ok: rclpy, vision_msgs, siam_tracking_ros interfaces, torch', torch.__version__, 'opencv', cv2.__version__)"
