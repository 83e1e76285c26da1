"""Tracker modules; importing each one registers its trackers."""
from siam_tracking_ros.core.trackers import siamfc  # noqa: F401
from siam_tracking_ros.core.trackers import siamrpn  # noqa: F401
from siam_tracking_ros.core.trackers import dsiam  # noqa: F401
from siam_tracking_ros.core.trackers import drol  # noqa: F401
from siam_tracking_ros.core.trackers import clnet  # noqa: F401
from siam_tracking_ros.core.trackers import sa_siam  # noqa: F401
