"""Synthetic sequences: determinism, geometric plausibility of the ground truth, usefulness."""
import math

import cv2
import numpy as np
import pytest
import torch

from siam_tracking_ros.core.boxes import one_based_to_zero_based, zero_based_to_one_based
from siam_tracking_ros.eval import ope, synth
from siam_tracking_ros.eval.baselines import OpenCVCsrt, csrt_available
from siam_tracking_ros.eval.datasets import open_dataset
from siam_tracking_ros.eval.metrics import score_sequence

SMALL = synth.SynthConfig(frames=24, width=160, height=120)


def files_by_name(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob('*') if p.is_file()}


def test_same_seed_writes_identical_bytes_and_another_seed_differs(tmp_path):
    names = synth.write_uav123_dataset(tmp_path / 'a', 2, seed=5, config=SMALL)
    synth.write_uav123_dataset(tmp_path / 'b', 2, seed=5, config=SMALL)
    synth.write_uav123_dataset(tmp_path / 'c', 2, seed=6, config=SMALL)
    first, second = files_by_name(tmp_path / 'a'), files_by_name(tmp_path / 'b')
    assert names == ['synth_000', 'synth_001']
    assert len(first) == 2 * (SMALL.frames + 1)
    assert first == second
    assert files_by_name(tmp_path / 'c')['anno/synth_000.txt'] != first['anno/synth_000.txt']


def test_written_dataset_reads_back_in_uav123_layout(tmp_path):
    synth.write_uav123_dataset(tmp_path / 'd', 1, seed=1, config=SMALL)
    sequence = open_dataset(tmp_path / 'd')['synth_000']
    assert len(sequence) == SMALL.frames
    assert sequence.read_frame(0).shape == (SMALL.height, SMALL.width, 3)
    assert np.isfinite(sequence.ground_truth[0]).all()


def test_visible_boxes_lie_inside_the_image():
    config = synth.SynthConfig(frames=30, width=192, height=128, out_of_view_probability=1.0)
    for index in range(5):
        sequence = synth.generate_sequence(21, index, config)
        assert len(sequence.frames) == config.frames
        assert all(f.dtype == np.uint8 and f.shape == (128, 192, 3) for f in sequence.frames)
        gt = sequence.ground_truth
        assert np.isfinite(gt[0]).all(), 'the first frame must show the target'
        visible = gt[np.isfinite(gt).all(axis=1)]
        assert np.all(visible[:, 2:] >= 2.0)
        # 1-based boxes: left/top edge at pixel >= 1, right/bottom edge within the frame.
        assert np.all(visible[:, :2] >= 1.0 - 1e-9)
        assert np.all(visible[:, 0] - 1 + visible[:, 2] <= config.width + 1e-9)
        assert np.all(visible[:, 1] - 1 + visible[:, 3] <= config.height + 1e-9)


def projected_extent(homography, centre, radius):
    """Image bounding box of a world square of half-side ``radius`` around ``centre``."""
    square = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], np.float64) * radius + centre
    points = cv2.perspectiveTransform(square.reshape(-1, 1, 2), homography).reshape(-1, 2)
    return points.min(axis=0), points.max(axis=0)


def test_ground_truth_is_nan_exactly_where_geometry_says_the_target_is_out_of_view():
    config = synth.SynthConfig(frames=40, width=160, height=120, out_of_view_probability=1.0,
                               occlusion_probability=0.0)
    frame_size = np.array([config.width, config.height])
    outside = inside = 0
    for index in range(4):
        # Rebuild the scene and camera the way generate_sequence does, from the same seed.
        rng = synth.sequence_rng(8, index)
        scene = synth.build_scene(rng, config, None)
        camera = synth.camera_path(rng, config, synth.scene_geometry(config), scene.target)
        gt = synth.generate_sequence(8, index, config).ground_truth
        sprite_height, sprite_width = scene.target.sprite.alpha.shape
        radius = math.hypot(sprite_width, sprite_height) / 2 + 2  # covers any rotation
        for t in range(config.frames):
            low, high = projected_extent(camera.homographies[t], scene.target.positions[t], radius)
            if np.any(high < 0) or np.any(low > frame_size):
                outside += 1
                assert np.isnan(gt[t]).all(), f'sequence {index} frame {t}: target out of view'
            elif np.all(low >= 0) and np.all(high <= frame_size) and not any(
                    _near(o, scene.target.positions[t], radius) for o in scene.occluders):
                inside += 1
                assert np.isfinite(gt[t]).all(), f'sequence {index} frame {t}: target in view'
    assert outside > 0 and inside > 0  # both cases were exercised


def _near(occluder, centre, radius):
    x, y, w, h = occluder.rect
    return (x - radius < centre[0] < x + w + radius) and (y - radius < centre[1] < y + h + radius)


@pytest.mark.skipif(not csrt_available(), reason='OpenCV CSRT (opencv-contrib) is not installed')
def test_a_generic_tracker_can_follow_the_synthetic_targets():
    # The sequences must carry real tracking signal: OpenCV's CSRT, which knows nothing of them,
    # keeps most of its overlap on short clips.
    config = synth.SynthConfig(frames=20, width=240, height=160, out_of_view_probability=0.0)
    aucs = []
    for index in range(3):
        sequence = synth.generate_sequence(4, index, config)
        tracker = OpenCVCsrt()
        tracker.init(sequence.frames[0], tuple(one_based_to_zero_based(sequence.ground_truth[0])))
        tracked, _ = ope.timed_tracking(tracker, sequence.frames[1:], torch.device('cpu'))
        predicted = np.concatenate([sequence.ground_truth[:1], zero_based_to_one_based(tracked)])
        aucs.append(score_sequence(predicted, sequence.ground_truth).auc)
    assert np.mean(aucs) > 0.4, aucs


def test_textures_from_a_folder_are_used_deterministically(tmp_path):
    textures = tmp_path / 'stills'
    textures.mkdir()
    rng = np.random.default_rng(0)
    for number in range(3):
        image = rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)
        cv2.imwrite(str(textures / f'{number}.png'), image)
    synth.write_uav123_dataset(tmp_path / 'a', 1, seed=2, config=SMALL, texture_dir=textures)
    synth.write_uav123_dataset(tmp_path / 'b', 1, seed=2, config=SMALL, texture_dir=textures)
    synth.write_uav123_dataset(tmp_path / 'plain', 1, seed=2, config=SMALL)
    textured = files_by_name(tmp_path / 'a')
    assert textured == files_by_name(tmp_path / 'b')
    assert textured['data_seq/synth_000/000001.jpg'] != files_by_name(tmp_path / 'plain')[
        'data_seq/synth_000/000001.jpg']


def test_textures_are_refused_from_an_evaluation_dataset(tmp_path):
    (tmp_path / 'eval' / 'anno').mkdir(parents=True)
    frames = tmp_path / 'eval' / 'data_seq' / 'seq'
    frames.mkdir(parents=True)
    cv2.imwrite(str(frames / '000001.jpg'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match='refusing textures .* evaluation dataset'):
        synth.list_texture_images(frames)


def test_texture_folder_errors(tmp_path):
    with pytest.raises(ValueError, match='texture folder not found'):
        synth.list_texture_images(tmp_path / 'missing')
    with pytest.raises(ValueError, match='no image files'):
        synth.list_texture_images(tmp_path)


@pytest.mark.parametrize('fields, message', [
    ({'frames': 1}, 'at least 2 frames'),
    ({'width': 32}, 'at least 64x64'),
    ({'distractors': (3, 1)}, 'distractors must be a range'),
    ({'occlusion_probability': 1.5}, 'occlusion_probability must be in'),
    ({'jpeg_quality': 0}, 'jpeg_quality'),
])
def test_invalid_config_is_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        synth.SynthConfig(**fields)


def test_dataset_needs_at_least_one_sequence(tmp_path):
    with pytest.raises(ValueError, match='num_sequences must be at least 1'):
        synth.write_uav123_dataset(tmp_path, 0)
