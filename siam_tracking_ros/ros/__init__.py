"""ROS 2 adapters: the tracker node and image message conversion."""
