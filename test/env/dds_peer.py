"""The other process of test_dds_exchange: serves SetTarget and publishes a Detection2DArray.

Run as `python dds_peer.py NAMESPACE`; prints READY once its service and publisher exist, then
answers set_target by publishing one Detection2DArray describing the requested box, and exits after
the first call.
"""
import sys
import threading

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from siam_tracking_ros.srv import SetTarget


# Latched, so the array reaches the test's subscriber even if discovery completes after publishing.
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class Peer(Node):
    def __init__(self, namespace: str):
        super().__init__('dds_peer', namespace=namespace)
        self.done = threading.Event()
        self.publisher = self.create_publisher(Detection2DArray, 'detections', LATCHED)
        self.create_service(SetTarget, 'set_target', self.on_set_target)

    def on_set_target(self, request, response):
        detection = Detection2D()
        detection.header.stamp = request.stamp
        detection.header.frame_id = 'camera'
        detection.id = request.target_id
        detection.bbox.center.position.x = request.x + request.width / 2
        detection.bbox.center.position.y = request.y + request.height / 2
        detection.bbox.size_x = request.width
        detection.bbox.size_y = request.height
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = request.label
        hypothesis.hypothesis.score = 0.75
        detection.results.append(hypothesis)
        message = Detection2DArray(header=detection.header, detections=[detection])
        self.publisher.publish(message)
        response.success = True
        response.message = f'box {request.width:g}x{request.height:g} received'
        response.frame_stamp = request.stamp
        self.done.set()
        return response


def main():
    rclpy.init()
    node = Peer(sys.argv[1])
    print('READY', flush=True)
    while rclpy.ok() and not node.done.is_set():
        rclpy.spin_once(node, timeout_sec=0.1)
    # Give the published array time to reach the subscriber before the participant goes away.
    for _ in range(20):
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == '__main__':
    main()
