"""Precision and memory layout of the trackers: channels_last changes no box, bf16 runs every
registered tracker, the float32-kept parts stay float32 (no test here times anything)."""
import warnings

import numpy as np
import pytest
import torch

from base_equivalence import real_frames, synthetic_frames, tracked_boxes, uses_resnet50
from siam_tracking_ros.core.online.augment import AugmentationConfig
from siam_tracking_ros.core.registry import build_tracker, default_config, list_trackers

REAL_SEQUENCE_FRAMES = 12
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA is not available')
# bf16 changes the networks, not DROL's first-frame augmentation (float32 numpy, before the
# cast to the model's dtype): the unshifted sample, one shifted sample and one dropout copy run
# the classifier's fit and update on bf16 features at a small part of the cost of the default 30
# (23 images, 7 dropout copies) where bf16 is emulated.
FEW_AUGMENTED_SAMPLES = dict(flip=False, rotations_deg=(), blur_sigmas=(),
                             relative_shifts=((0.6, 0.6),), dropout_samples=1)
# Frames of the synthetic sequence per tracker: the first and two tracked ones, or one tracked
# frame for the ResNet-50 trackers, whose search crop takes about 12 s where bf16 is emulated
# (an AVX2 CPU); one tracked frame already runs every layer of their track step in bf16.
END_TO_END_FRAMES = {'r50': 2, 'alexnet': 3}


def built(name: str, device: str = 'cpu', **overrides):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # untrained seed networks warn
        return build_tracker(name, device=device, **overrides)


@pytest.mark.parametrize('name', ['siamrpn_alexnet', 'siamfc_alexnet'])
def test_channels_last_gives_the_same_boxes_on_a_real_sequence(uav_dev, name):
    frames, first_box = real_frames(uav_dev, 'car16_1', REAL_SEQUENCE_FRAMES)
    nchw = tracked_boxes(built(name, channels_last=False), frames, first_box)
    nhwc = tracked_boxes(built(name, channels_last=True), frames, first_box)
    np.testing.assert_allclose(nhwc, nchw, rtol=0, atol=1e-3)


def test_channels_last_puts_model_and_input_in_nhwc():
    tracker = built('siamrpn_alexnet', channels_last=True)
    weight = tracker.model.backbone.features[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    crops = tracker.network_input(torch.zeros(1, 3, 127, 127))
    assert crops.is_contiguous(memory_format=torch.channels_last)
    flat = built('siamrpn_alexnet', channels_last=False)
    assert flat.model.backbone.features[0].weight.is_contiguous()


def _search_crops(tracker):
    tracker.init(np.zeros((120, 160, 3), np.uint8), (60.0, 40.0, 20.0, 30.0))
    return tracker.prepare_frame(np.zeros((120, 160, 3), np.uint8)).crops


def test_default_layout_in_fp32_is_the_references_and_nhwc_in_reduced_precision():
    # fp32: NCHW weights, crops as each reference feeds them (pysot: NCHW; siamfc-pytorch: its
    # exemplar NCHW, its permuted batch of scale crops NHWC).
    rpn = built('siamrpn_alexnet', precision='fp32')
    assert not rpn.model.backbone.features[0].weight.is_contiguous(
        memory_format=torch.channels_last)
    assert _search_crops(rpn).is_contiguous()
    assert rpn.network_input(torch.zeros(1, 3, 127, 127)).is_contiguous()
    fc = built('siamfc_alexnet', precision='fp32')
    assert fc.network_input(_search_crops(fc)).is_contiguous(memory_format=torch.channels_last)
    assert fc.network_input(torch.zeros(1, 3, 127, 127)).is_contiguous()
    fast = built('siamrpn_alexnet', precision='bf16')
    assert fast.memory_format is torch.channels_last
    forced = built('siamfc_alexnet', precision='fp32', channels_last=False)
    assert forced.network_input(_search_crops(forced)).is_contiguous()


@pytest.mark.parametrize('name', list_trackers())
def test_bf16_runs_every_registered_tracker_end_to_end(name):
    count = END_TO_END_FRAMES['r50' if uses_resnet50(name) else 'alexnet']
    frames, first_box = synthetic_frames(seed=5, count=count, size=(320, 180))
    augments_first_frame = isinstance(default_config(name), AugmentationConfig)
    tracker = built(name, precision='bf16',
                    **(FEW_AUGMENTED_SAMPLES if augments_first_frame else {}))
    assert tracker.precision == 'bf16' and tracker.dtype is torch.bfloat16
    tracked = tracked_boxes(tracker, frames, first_box)
    assert tracked.shape == (count, 4) and np.all(np.isfinite(tracked))


def test_bf16_keeps_siamrpn_head_layers_float32_and_the_backbone_bf16():
    tracker = built('siamrpn_alexnet', precision='bf16')
    assert tracker.model.backbone.features[0].weight.dtype is torch.bfloat16
    assert tracker.model.rpn_head.cls.conv_search[0].weight.dtype is torch.bfloat16
    kept = tracker.full_precision_modules()
    assert kept and all(p.dtype is torch.float32 for m in kept for p in m.parameters())
    frames, first_box = synthetic_frames(seed=5, count=2, size=(320, 180))
    tracker.init(frames[0], tuple(float(v) for v in first_box))
    with torch.inference_mode():
        crops = tracker.crop_search(tracker.frame_pixels(frames[1]), tracker.search_geometry())
        cls, loc = tracker.run_head(tracker.template_features, tracker.extract_features(crops))
    assert cls.dtype is torch.float32 and loc.dtype is torch.float32


def test_reloading_weights_keeps_dtype_layout_and_float32_parts():
    tracker = built('siamrpn_alexnet', precision='bf16')
    from siam_tracking_ros.core.registry import shipped_weights
    path = shipped_weights('siamrpn_alexnet')
    if path is None:
        pytest.skip('no siamrpn_alexnet weights ship with this checkout')
    tracker.load_weights(path)
    weight = tracker.model.backbone.features[0].weight
    assert weight.dtype is torch.bfloat16
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert all(p.dtype is torch.float32 for m in tracker.full_precision_modules()
               for p in m.parameters())


def test_unknown_precision_in_the_config_names_the_choices():
    with pytest.raises(ValueError, match='unknown precision .fp64.*fp32, bf16, fp16, auto'):
        built('siamfc_alexnet', precision='fp64')


def test_fp32_is_the_library_default():
    tracker = built('siamfc_alexnet')
    assert tracker.config.precision == 'fp32' and tracker.dtype is torch.float32


@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_the_cpu_runs_no_cuda_graphs(precision):
    assert built('siamfc_alexnet', precision=precision).graphed_features is None


@CUDA
@pytest.mark.parametrize('name', ['siamrpn_alexnet', 'siamfc_alexnet'])
def test_cuda_graphs_track_as_the_eager_network(name):
    frames, first_box = synthetic_frames(seed=5, count=6, size=(640, 360))
    graphed = built(name, device='cuda', precision='fp16')
    eager = built(name, device='cuda', precision='fp16')
    assert graphed.graphed_features is not None
    eager.graphed_features = None
    np.testing.assert_allclose(tracked_boxes(graphed, frames, first_box),
                               tracked_boxes(eager, frames, first_box), rtol=0, atol=1e-3)


@CUDA
def test_cuda_graph_outputs_are_not_overwritten_by_the_next_frame():
    tracker = built('siamrpn_alexnet', device='cuda', precision='fp16')
    with torch.inference_mode():
        first_crops = torch.rand(1, 3, 287, 287, device='cuda')
        first = tracker.extract_features(first_crops)[0]
        kept = first.clone()
        tracker.extract_features(torch.rand(1, 3, 287, 287, device='cuda'))
    assert torch.equal(first, kept)
