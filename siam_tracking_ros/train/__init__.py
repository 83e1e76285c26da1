"""Training pipeline: data sources, pair sampling and augmentation, targets and losses, recipes
per tracker, and the loop behind ``siamtrack train``. Never imports rclpy or *_msgs."""
