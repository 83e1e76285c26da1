import dataclasses
import warnings

import pytest

from siam_tracking_ros.core import registry
from siam_tracking_ros.core.trackers.siamfc import SiamFCConfig, SiamFCTracker
from siam_tracking_ros.core.trackers.siamrpn import SiamRPNConfig


def test_reference_trackers_are_registered():
    names = registry.list_trackers()
    assert {'siamfc_alexnet', 'siamrpn_alexnet', 'siamrpn_r50_l234'} <= set(names)
    assert names == sorted(names)


def test_default_configs_carry_the_reference_constants():
    r50 = registry.default_config('siamrpn_r50_l234')
    assert isinstance(r50, SiamRPNConfig)
    assert (r50.instance_size, r50.base_size, r50.penalty_k, r50.window_influence, r50.lr) == \
        (255, 8, 0.05, 0.42, 0.38)
    # Short-term by default (the published protocol); the long-term constants are ready for
    # lost_threshold=0.8 (pysot's CONFIDENCE_LOW).
    assert (r50.lost_threshold, r50.recover_threshold, r50.lost_instance_size) == \
        (0.0, 0.998, 831)
    assert registry.default_config('siamfc_alexnet').lost_threshold == 0.0
    alex = registry.default_config('siamrpn_alexnet')
    assert (alex.backbone, alex.instance_size, alex.base_size, alex.penalty_k,
            alex.window_influence, alex.lr) == ('alexnet', 287, 0, 0.16, 0.40, 0.30)
    fc = registry.default_config('siamfc_alexnet')
    assert (fc.scale_num, fc.scale_step, fc.scale_lr, fc.scale_penalty, fc.window_influence,
            fc.response_up, fc.out_scale) == (3, 1.0375, 0.59, 0.9745, 0.176, 16, 0.001)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fc.scale_lr = 0.1


def test_unknown_tracker_lists_known_names():
    with pytest.raises(ValueError, match="unknown tracker 'siamxyz'.*siamfc_alexnet"):
        registry.build_tracker('siamxyz', device='cpu')
    with pytest.raises(ValueError, match='siamrpn_r50_l234'):
        registry.default_config('nope')


def test_unknown_override_raises():
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['window_inflence'\]"):
        registry.build_tracker('siamfc_alexnet', device='cpu', window_inflence=0.2)


def test_overrides_are_applied():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        tracker = registry.build_tracker('siamfc_alexnet', device='cpu', window_influence=0.3)
    assert isinstance(tracker, SiamFCTracker)
    assert tracker.config.window_influence == 0.3
    assert tracker.name == 'siamfc_alexnet'


def test_tracker_without_shipped_weights_warns_it_is_random():
    # ResNet-50 weights are too large to ship: users bring pysot's file.
    assert registry.shipped_weights('siamrpn_r50_l234') is None
    with pytest.warns(UserWarning, match='randomly initialised'):
        registry.build_tracker('siamrpn_r50_l234', device='cpu')


def test_shipped_weights_load_by_default_without_warning():
    if registry.shipped_weights('siamfc_alexnet') is None:
        pytest.skip('no siamfc_alexnet weights ship in siam_tracking_ros/data/weights')
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)
        tracker = registry.build_tracker('siamfc_alexnet', device='cpu')
    assert tracker.name == 'siamfc_alexnet'


def test_missing_weights_file_raises(tmp_path):
    with pytest.raises(ValueError, match='does not exist'):
        registry.build_tracker('siamfc_alexnet', weights=tmp_path / 'none.pth', device='cpu')


def test_invalid_config_values_raise():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        with pytest.raises(ValueError, match='lost_threshold <= recover_threshold'):
            registry.build_tracker('siamrpn_alexnet', device='cpu', lost_threshold=0.9,
                                   recover_threshold=0.5)
        with pytest.raises(ValueError, match='multiple of 8'):
            registry.build_tracker('siamfc_alexnet', device='cpu', lost_instance_size=300)
        with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
            registry.build_tracker('siamrpn_alexnet', device='cpu', backbone='vgg')


def test_registration_rules():
    with pytest.raises(ValueError, match='already registered'):
        registry.register_tracker('siamfc_alexnet', SiamFCConfig, SiamFCTracker)
    with pytest.raises(ValueError, match='dataclass'):
        registry.register_tracker('not_a_config', dict, SiamFCTracker)


def test_decorator_registration_and_base_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, '_REGISTRY', dict(registry._REGISTRY))
    monkeypatch.setattr(registry, 'WEIGHTS_DIR', tmp_path)

    @registry.register_tracker('siamfc_variant', SiamFCConfig, weights_name='siamfc_alexnet')
    class Variant(SiamFCTracker):
        pass

    assert 'siamfc_variant' in registry.list_trackers()
    assert registry.shipped_weights('siamfc_variant') is None
    (tmp_path / 'siamfc_alexnet.pth').write_bytes(b'')
    # A variant without its own file uses its base tracker's shipped weights.
    assert registry.shipped_weights('siamfc_variant') == tmp_path / 'siamfc_alexnet.pth'
    (tmp_path / 'siamfc_variant.pth').write_bytes(b'')
    assert registry.shipped_weights('siamfc_variant') == tmp_path / 'siamfc_variant.pth'
