#!/usr/bin/env bash
# Builds `launch`, `launch_ros` (with `ros2launch`, the code behind `ros2 launch`) and
# `composition_interfaces` from ../shared/ros_src into the pip environment's colcon install tree,
# so that the launch files can be started for real (test/ros/test_launch_files.py). No package
# registry reachable here carries them; a ROS install has them already.
# Skips with a message when the folder is absent. Idempotent; the sources are only read.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
ROS_SRC="${ROS_SRC:-$ROOT/../shared/ros_src}"

if [ ! -d "$ROS_SRC" ]; then
  echo "skipping the launch sources: $ROS_SRC not found (the ros2 launch tests will skip)"
  exit 0
fi
if [ ! -x "$PY" ]; then
  echo "error: $VENV is missing; run scripts/setup_venv.sh first" >&2
  exit 1
fi
ROS_SRC="$(cd "$ROS_SRC" && pwd)"

# Only what ros2launch's API needs: launch_testing / launch_pytest (pytest plugins that would load
# into every test run) and launch_testing_ros are left out.
PACKAGES=(
  "$ROS_SRC/rcl_interfaces/composition_interfaces"
  "$ROS_SRC/launch/launch"
  "$ROS_SRC/launch/launch_xml"
  "$ROS_SRC/launch/launch_yaml"
  "$ROS_SRC/launch_ros/launch_ros"
  "$ROS_SRC/launch_ros/ros2launch"
)
for package in "${PACKAGES[@]}"; do
  if [ ! -f "$package/package.xml" ]; then
    echo "error: $package/package.xml not found: $ROS_SRC is not the expected ros_src layout" >&2
    exit 1
  fi
done

printf '\n==> %s\n' "colcon build (composition_interfaces, launch, launch_ros, ros2launch) from $ROS_SRC"
# Same workspace as scripts/setup_venv.sh: the install tree it makes usable from .venv.
# shellcheck disable=SC2097,SC2098
AMENT_PREFIX_PATH="$ROOT/install:$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/colcon" \
  --log-base "$ROOT/build/colcon_log" build \
  --base-paths "${PACKAGES[@]}" \
  --build-base "$ROOT/build/colcon" --install-base "$ROOT/install" --merge-install \
  --event-handlers console_start_end+ \
  --cmake-args -DBUILD_TESTING=OFF "-DPython3_EXECUTABLE=$PY" -DCMAKE_BUILD_TYPE=Release

printf '\n==> %s\n' "checking ros2launch"
"$PY" -c "import composition_interfaces.srv, launch, launch_ros.actions, ros2launch.api; print('ok: launch', launch.__file__)"
