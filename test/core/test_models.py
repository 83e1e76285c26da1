import pytest
import torch

from siam_tracking_ros.core.models.heads import xcorr_depthwise, xcorr_fast
from siam_tracking_ros.core.models.resnet import PysotResNet50
from siam_tracking_ros.core.models.siamese import SiamFCNet, siamrpn_alexnet, siamrpn_r50_l234

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def r50():
    return siamrpn_r50_l234().eval()


@pytest.fixture(scope='module')
def alexnet_rpn():
    return siamrpn_alexnet().eval()


@torch.inference_mode()
def test_siamfc_response_is_17x17():
    net = SiamFCNet().eval()
    template = net.features(torch.rand(1, 3, 127, 127) * 255)
    search = net.features(torch.rand(3, 3, 255, 255) * 255)
    assert template.shape == (1, 256, 6, 6)
    assert search.shape == (3, 256, 22, 22)
    assert net(template, search).shape == (3, 1, 17, 17)


@torch.inference_mode()
def test_siamfc_head_scales_plain_xcorr():
    template, search = torch.randn(1, 4, 3, 3), torch.randn(2, 4, 7, 7)
    expected = torch.stack([torch.nn.functional.conv2d(search[i:i + 1], template)[0]
                            for i in range(2)])
    torch.testing.assert_close(SiamFCNet().head(template, search), expected * 0.001)


@torch.inference_mode()
def test_depthwise_xcorr_matches_per_channel_convolution():
    template, search = torch.randn(1, 3, 2, 2), torch.randn(2, 3, 5, 5)
    out = xcorr_depthwise(template, search)
    assert out.shape == (2, 3, 4, 4)
    for n in range(2):
        for c in range(3):
            expected = torch.nn.functional.conv2d(search[n:n + 1, c:c + 1], template[:, c:c + 1])
            torch.testing.assert_close(out[n, c], expected[0, 0])
    assert xcorr_fast(template, search).shape == (2, 1, 4, 4)


@torch.inference_mode()
def test_correlations_stay_float32_under_autocast():
    """Training autocasts the network; the correlations keep float32 sums (in fp16 they can
    overflow), bit for bit the same as outside autocast."""
    template, search = torch.randn(2, 3, 2, 2) * 100, torch.randn(2, 3, 5, 5) * 100
    plain = xcorr_depthwise(template, search), xcorr_fast(template, search)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        cast = xcorr_depthwise(template, search), xcorr_fast(template, search)
    for outside, inside in zip(plain, cast):
        assert inside.dtype == torch.float32 and torch.equal(inside, outside)
    assert xcorr_fast(template.bfloat16(), search.bfloat16()).dtype == torch.bfloat16


@torch.inference_mode()
def test_alexnet_rpn_score_map_is_21x21(alexnet_rpn):
    template = alexnet_rpn.features(torch.rand(1, 3, 127, 127) * 255)
    search = alexnet_rpn.features(torch.rand(1, 3, 287, 287) * 255)
    assert [t.shape for t in template] == [(1, 256, 6, 6)]
    cls, loc = alexnet_rpn(template, search)
    assert cls.shape == (1, 10, 21, 21)
    assert loc.shape == (1, 20, 21, 21)


@torch.inference_mode()
def test_r50_rpn_score_map_is_25x25(r50):
    template = r50.features(torch.rand(1, 3, 127, 127) * 255)
    search = r50.features(torch.rand(1, 3, 255, 255) * 255)
    # The neck crops the 15x15 template maps to their central 7x7.
    assert [t.shape for t in template] == [(1, 256, 7, 7)] * 3
    assert [t.shape for t in search] == [(1, 256, 31, 31)] * 3
    cls, loc = r50(template, search)
    assert cls.shape == (1, 10, 25, 25)
    assert loc.shape == (1, 20, 25, 25)


@torch.inference_mode()
def test_r50_backbone_strides():
    backbone = PysotResNet50().eval()
    outputs = backbone(torch.zeros(1, 3, 127, 127))
    assert [tuple(o.shape[1:]) for o in outputs] == [(512, 15, 15), (1024, 15, 15),
                                                    (2048, 15, 15)]


@torch.inference_mode()
def test_head_param_deltas_change_only_what_they_name(r50):
    template = [torch.randn(1, 256, 7, 7) for _ in range(3)]
    search = [torch.randn(1, 256, 11, 11) for _ in range(3)]
    cls, loc = r50(template, search)
    zero = {'rpn2.cls.head.3.weight': torch.zeros(10, 256, 1, 1)}
    cls_zero, loc_zero = r50(template, search, zero)
    torch.testing.assert_close(cls_zero, cls)
    bias_delta = torch.ones(10)
    cls_shift, loc_shift = r50(template, search, {'rpn3.cls.head.3.bias': bias_delta})
    weight = torch.softmax(r50.rpn_head.cls_weight, 0)[1]
    torch.testing.assert_close(cls_shift, cls + weight * bias_delta.reshape(1, 10, 1, 1))
    torch.testing.assert_close(loc_shift, loc)


def test_head_param_deltas_reject_other_layers(r50, alexnet_rpn):
    template = [torch.randn(1, 256, 7, 7) for _ in range(3)]
    search = [torch.randn(1, 256, 11, 11) for _ in range(3)]
    with pytest.raises(ValueError, match='last layer only'):
        r50(template, search, {'rpn2.cls.head.0.weight': torch.zeros(256, 256, 1, 1)})
    with pytest.raises(ValueError, match='expected'):
        r50(template, search, {'rpn2.loc.head.3.bias': torch.zeros(3)})
    with pytest.raises(ValueError, match='last layer only'):
        alexnet_rpn([template[0]], [search[0]], {'rpn2.cls.head.3.bias': torch.zeros(10)})
