# `make setup`: the pip environment (.venv) with ROS 2 Jazzy, torch, and this package built by colcon;
#               with ../shared/ros_src beside the repository also launch, launch_ros and ros2launch.
# `make test`:  the whole test suite over real DDS on this machine only.
# `make demo`:  the node tracking a sequence with the weights that ship; output in demo_out/.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-complete
SETUP_INPUTS := requirements.lock package.xml CMakeLists.txt setup.py \
	$(wildcard msg/*.msg srv/*.srv interfaces/vision_msgs/msg/*.msg interfaces/vision_msgs/*.in) \
	scripts/setup_venv.sh scripts/venv_ros_env.py.in \
	$(wildcard scripts/tracker_node scripts/siamtrack launch/*.py config/*.yaml)
# ROS 2 launch sources no reachable registry carries (see scripts/build_launch_sources.sh).
ROS_SRC := $(wildcard ../shared/ros_src)
LAUNCH_STAMP := $(VENV)/.launch-sources-complete

# DDS stays on this machine, each run on a domain of its own, with a shared-memory segment large
# enough for 720p frames (config/fastdds_local.xml).
ROS_ENV = ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
	ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-$$(( RANDOM % 100 + 1 ))} \
	RMW_IMPLEMENTATION=rmw_fastrtps_cpp \
	FASTRTPS_DEFAULT_PROFILES_FILE=$(CURDIR)/config/fastdds_local.xml

.PHONY: setup test demo clean

setup: $(STAMP) $(if $(ROS_SRC),$(LAUNCH_STAMP))
ifeq ($(ROS_SRC),)
	@echo "skipping launch/launch_ros: ../shared/ros_src not found (the ros2 launch tests skip)"
endif

$(STAMP): $(SETUP_INPUTS)
	bash scripts/setup_venv.sh
	touch $@

# After every setup_venv.sh run too: it rebuilds the install tree these are built into.
$(LAUNCH_STAMP): $(STAMP) scripts/build_launch_sources.sh
	bash scripts/build_launch_sources.sh
	touch $@

# Tests run single-threaded (test/conftest.py): the CPU-bound ones on two pytest-xdist workers, which
# keep both cores busy (TEST_WORKERS=0: one process); a worker that runs out of tests takes pending
# ones from the other (worksteal), so the long tests near the end do not leave a core idle. Then
# the tests that start nodes and talk over DDS with answer deadlines, in one process with the
# cores to themselves. Exit status 5 (every test of a phase deselected by PYTEST_ARGS) is no failure.
TEST_WORKERS ?= 2
NODE_TESTS := test/ros test/bag test/env
PYTEST_OK = || [ $$? -eq 5 ]

test: setup
	$(ROS_ENV) $(PY) -m pytest test -n $(TEST_WORKERS) --dist worksteal $(addprefix --ignore=,$(NODE_TESTS)) $(PYTEST_ARGS) $(PYTEST_OK)
	$(ROS_ENV) $(PY) -m pytest $(NODE_TESTS) $(PYTEST_ARGS) $(PYTEST_OK)

demo: setup
	$(ROS_ENV) $(PY) -m siam_tracking_ros.tools.demo $(DEMO_ARGS)

clean:
	rm -rf build install log demo_out $(VENV)
