"""Training data readers, pair sampling and the refusal of the evaluation set."""
from pathlib import Path

import numpy as np
import pytest

from siam_tracking_ros.train.augment import AugmentConfig, CropConfig, make_crop_pair
from siam_tracking_ros.train.pairs import ImageCache, PairSampler, PairSamplingConfig
from siam_tracking_ros.train.sources import (TrainingDataError, ensure_not_evaluation_set,
                                             load_tracks, parse_synth_spec)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_evaluation_set_is_refused_by_name(tmp_path):
    # Refused from the path alone, so the check holds whether or not the folder is present.
    with pytest.raises(TrainingDataError, match='evaluation set'):
        ensure_not_evaluation_set(REPO_ROOT / '..' / 'shared' / 'uav_dev')
    nested = tmp_path / 'uav_dev' / 'anno'
    nested.mkdir(parents=True)
    with pytest.raises(TrainingDataError, match='uav_dev'):
        load_tracks(str(nested.parent), tmp_path / 'synth')


def test_missing_folder_and_bad_synth_spec_are_explained(tmp_path):
    with pytest.raises(TrainingDataError, match='does not exist'):
        load_tracks(str(tmp_path / 'nothing'), tmp_path / 'synth')
    with pytest.raises(TrainingDataError, match='synth:N'):
        parse_synth_spec('synth:many')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(TrainingDataError, match='no training data found'):
        load_tracks(str(tmp_path / 'empty'), tmp_path / 'synth')


def test_coco_stills_keep_usable_boxes_only(coco_folder):
    tracks = load_tracks(str(coco_folder), coco_folder / 'synth')
    assert len(tracks) == 2  # DontCare and the 3-pixel box are skipped
    assert all(track.is_still for track in tracks)
    np.testing.assert_allclose(tracks[0].boxes[0], [60, 50, 40, 30])


def test_sequence_boxes_become_zero_based(sequence_folder):
    (track,) = load_tracks(str(sequence_folder.parent), sequence_folder / 'synth')
    assert len(track.frame_paths) == 6
    np.testing.assert_allclose(track.boxes[0], [40, 50, 36, 28])


def test_pairs_stay_within_the_gap_and_crops_hold_the_target(sequence_folder):
    (track,) = load_tracks(str(sequence_folder), sequence_folder / 'synth')
    sampler = PairSampler([track], PairSamplingConfig(max_gap=2))
    rng = np.random.default_rng(0)
    cache = ImageCache()
    no_jitter = AugmentConfig(template_shift=0, template_scale=0, search_shift=0, search_scale=0,
                              blur_probability=0, colour_jitter=0, flip_probability=0,
                              grey_probability=0)
    for _ in range(10):
        pair = sampler.sample(rng)
        assert abs(pair.template.frame - pair.search.frame) <= 2
        crops = make_crop_pair(cache.read(pair.template.path), pair.template.box,
                               cache.read(pair.search.path), pair.search.box, pair.negative,
                               CropConfig(), no_jitter, rng)
        assert crops.template.shape == (127, 127, 3) and crops.search.shape == (255, 255, 3)
        # Without jitter the target sits at the search centre (up to the crop's rounding to whole
        # image pixels, one of which spans `zoom` crop pixels), at the exemplar's scale.
        cx, cy, w, h = crops.search_box
        zoom = 255 / round(np.sqrt((36 + 32) * (28 + 32)) * 255 / 127)
        assert abs(cx - 127) <= zoom and abs(cy - 127) <= zoom
        assert w == pytest.approx(36 * zoom, rel=1e-6)
        # The target's yellow top band is where the box says.
        assert crops.search[int(cy - h / 2) + 3, int(cx), 2] > 200
