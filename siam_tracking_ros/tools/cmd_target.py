"""`siamtrack target`: set, clear or point-select the targets of a running tracker_node.

    siamtrack target set 120 80 40 30 --id car1 --label car --namespace /drone1
    siamtrack target set 300 90 40 30 --id car2        (a second target beside car1)
    siamtrack target point 140 95 --stamp 1712345678.250000000 --id walker
    siamtrack target clear --id car1                   (stop tracking car1 only)
    siamtrack target clear --timeout 5                 (stop tracking every target)

A new --id adds a target (up to the node's max_targets), a tracked one's replaces it; without
--id the request names the unnamed target (one target, as before ids existed).

Prints the node's reply; exits 0 when the node accepted the request, 1 when it refused it or
did not answer in time, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import math
import sys

EXIT_OK, EXIT_REFUSED = 0, 1


def stamp_argument(text: str) -> tuple[int, int]:
    """'SEC.NANOSEC' (nanoseconds as 9 digits or fewer, e.g. 12.5 = 12 s 500 ms) or 'SEC'."""
    seconds, _, fraction = text.partition('.')
    if not seconds.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > 9:
        raise argparse.ArgumentTypeError(f"stamp must look like SEC or SEC.NANOSEC, got '{text}'")
    return int(seconds), int(fraction.ljust(9, '0')) if fraction else 0


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = 'Call the target services of a running tracker_node.'
    parser.add_argument('--namespace', default='', help='namespace of the node (e.g. /drone1)')
    parser.add_argument('--timeout', type=float, default=10.0,
                        help='seconds to wait for the service and its reply (default 10)')
    actions = parser.add_subparsers(dest='action', required=True)
    set_parser = actions.add_parser('set', help='track the box X Y W H (top-left, size, pixels)')
    for name in ('x', 'y', 'width', 'height'):
        set_parser.add_argument(name, type=finite_float)
    point_parser = actions.add_parser('point', help='track the object at pixel X Y')
    for name in ('x', 'y'):
        point_parser.add_argument(name, type=finite_float)
    for target_parser in (set_parser, point_parser):
        target_parser.add_argument('--stamp', type=stamp_argument,
                                   help='stamp of the frame the box/point refers to (default: '
                                        'the newest frame)')
        target_parser.add_argument('--id', default='', help='target id reported in detections: '
                                                            'a new id adds a target, a tracked '
                                                            'one replaces it')
        target_parser.add_argument('--label', default='', help='class label of the target')
    clear_parser = actions.add_parser('clear', help='stop tracking every target, or one')
    clear_parser.add_argument('--id', default=None,
                              help="stop tracking only this target ('' names the unnamed one)")


def build_request(args):
    """(service type, service name, request) for the parsed arguments."""
    from builtin_interfaces.msg import Time
    from std_srvs.srv import Trigger

    from siam_tracking_ros.srv import ClearTarget, SelectTargetAtPoint, SetTarget

    if args.action == 'clear' and args.id is not None:
        return ClearTarget, 'clear_target_id', ClearTarget.Request(target_id=args.id)
    if args.action == 'clear':
        return Trigger, 'clear_target', Trigger.Request()
    stamp = Time(sec=args.stamp[0], nanosec=args.stamp[1]) if args.stamp else Time()
    if args.action == 'set':
        return SetTarget, 'set_target', SetTarget.Request(
            x=args.x, y=args.y, width=args.width, height=args.height, stamp=stamp,
            target_id=args.id, label=args.label)
    return SelectTargetAtPoint, 'select_target_at_point', SelectTargetAtPoint.Request(
        x=args.x, y=args.y, stamp=stamp, target_id=args.id, label=args.label)


def describe_reply(reply) -> str:
    lines = [f"{'accepted' if reply.success else 'refused'}: {reply.message}"]
    if hasattr(reply, 'frame_stamp') and reply.success:
        lines.append(f'frame stamp: {reply.frame_stamp.sec}.{reply.frame_stamp.nanosec:09d}')
    if hasattr(reply, 'box_width') and reply.success:
        lines.append(f'box: x={reply.box_x:g} y={reply.box_y:g} w={reply.box_width:g} '
                     f'h={reply.box_height:g}')
    return '\n'.join(lines)


def call_service(service_type, name: str, request, timeout: float):
    """The reply, or None after printing why there is none."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('siamtrack_target', context=context)
        client = node.create_client(service_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            print(f"error: service '{client.srv_name}' is not offered (is tracker_node running "
                  'in this namespace and ROS_DOMAIN_ID?)', file=sys.stderr)
            return None
        future = client.call_async(request)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.spin_until_future_complete(future, timeout_sec=timeout)
        if not future.done():
            print(f"error: no reply from '{client.srv_name}' within {timeout:g} s", file=sys.stderr)
            return None
        return future.result()
    finally:
        rclpy.try_shutdown(context=context)


def run(args: argparse.Namespace) -> int:
    service_type, name, request = build_request(args)
    namespace = args.namespace.rstrip('/')
    reply = call_service(service_type, f'{namespace}/{name}' if namespace else name, request,
                         args.timeout)
    if reply is None:
        return EXIT_REFUSED
    print(describe_reply(reply))
    return EXIT_OK if reply.success else EXIT_REFUSED
