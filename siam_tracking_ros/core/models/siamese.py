"""Assembled Siamese networks: ``features(crops)`` for either branch, then the head."""
from __future__ import annotations

from torch import nn

from siam_tracking_ros.core.models.alexnet import PysotAlexNet, SiamFCAlexNet
from siam_tracking_ros.core.models.heads import (DepthwiseXCorr, MultiRPN, SiamFCHead,
                                                 SingleLayerRPN)
from siam_tracking_ros.core.models.necks import AdjustAllLayer
from siam_tracking_ros.core.models.resnet import PysotResNet50


class SiamFCNet(nn.Module):
    """siamfc-pytorch's ``Net``: ``backbone.conv{1..5}.*`` and a parameter-free head."""

    def __init__(self, out_scale: float = 0.001):
        super().__init__()
        self.backbone = SiamFCAlexNet()
        self.head = SiamFCHead(out_scale)

    def features(self, crops):
        return self.backbone(crops)

    def forward(self, template_features, search_features):
        return self.head(template_features, search_features)


class SiamRPNNet(nn.Module):
    """pysot's ``ModelBuilder``: ``backbone``, optional ``neck``, ``rpn_head``.

    ``features`` always returns a list of per-layer maps (one element for single-layer models).
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module | None, rpn_head: nn.Module):
        super().__init__()
        self.backbone = backbone
        if neck is not None:
            self.neck = neck
        self.rpn_head = rpn_head

    def features(self, crops):
        features = self.backbone(crops)
        if not isinstance(features, list):
            features = [features]
        if hasattr(self, 'neck'):
            features = self.neck(features)
        return features

    def forward(self, template_features, search_features, param_deltas=None):
        return self.rpn_head(template_features, search_features, param_deltas)

    def full_precision_modules(self) -> list[nn.Module]:
        """The 1x1 layers after each depth-wise correlation: in bf16 their rounding of the score
        logits and box deltas cost SiamRPN accuracy, for a small share of the compute. Also any
        added sub-network whose class sets ``keeps_float32`` (CLNet's latent networks)."""
        heads = [module.head for module in self.modules() if isinstance(module, DepthwiseXCorr)]
        return heads + [module for module in self.children()
                        if getattr(module, 'keeps_float32', False)]


def siamrpn_alexnet(anchor_num: int = 5, width_mult: float = 1.0) -> SiamRPNNet:
    """pysot ``siamrpn_alex_dwxcorr``: AlexNetLegacy, no neck, one depth-wise RPN."""
    backbone = PysotAlexNet(width_mult)
    return SiamRPNNet(backbone, None,
                      SingleLayerRPN(anchor_num, backbone.out_channels, backbone.out_channels))


def siamrpn_r50_l234(anchor_num: int = 5) -> SiamRPNNet:
    """pysot ``siamrpn_r50_l234_dwxcorr``: ResNet-50 layers 2-4, 1x1 adjust to 256, weighted
    fusion of three depth-wise RPNs."""
    backbone = PysotResNet50(used_layers=(2, 3, 4))
    neck = AdjustAllLayer(backbone.out_channels, [256, 256, 256])
    return SiamRPNNet(backbone, neck, MultiRPN(anchor_num, [256, 256, 256], weighted=True))
