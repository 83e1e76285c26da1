"""Rosbag replay evaluation of the tracker node: convert, replay, record, score, report."""
