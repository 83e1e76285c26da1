"""Print requirements.lock for the current environment: every distribution pip installed, pinned.

The ROS wheels also carry egg-info records of their inner packages (action_msgs, rclpy, ...) that
no index serves; only what pip itself installed (its INSTALLER record says so) can be pinned.
Usage: .venv/bin/python scripts/lock_requirements.py > requirements.lock
"""
import importlib.metadata

SKIP = {'pip', 'siam-tracking-ros'}


def pinned_requirements():
    pins = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata['Name']
        key = name.lower().replace('_', '-')
        if (dist.read_text('INSTALLER') or '').strip() != 'pip' or key in SKIP:
            continue
        # torch's local label (+cpu) is not in the index name; the wheel on disk matches the bare version.
        pins[key] = f'{name}=={dist.version.split("+")[0]}'
    return [pins[k] for k in sorted(pins)]


if __name__ == '__main__':
    print('# Exact versions of every package pip installs into .venv.')
    print('# Regenerate after changing requirements.in: scripts/lock_requirements.py')
    print('\n'.join(pinned_requirements()))
