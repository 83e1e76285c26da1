"""CLNet (Dong et al., ECCV 2020): SiamRPN++ adjusted once per sequence by a compact latent net.

At the first frame (``on_init``) the tracker crops the search region around the given box, runs
the head to record the hidden maps ``M`` feeding the last layer of every cls/loc branch, labels
the anchors by IoU with the box (> 0.6 positive, < 0.3 negative, SiamRPN++'s rule quoted in
section 3.4), and lets the compact latent network predict deltas for those last layers
(eqs. 3-6). From then on it is plain SiamRPN++ with the adjusted head (eq. 7): the base tracker
adds ``head_param_deltas`` in ``run_head``.

The CLNet modules live in the model under ``clnet.*`` so that one checkpoint holds the base
network and the adjustment network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from siam_tracking_ros.core import boxes
from siam_tracking_ros.core.models.clnet import CLNetModules, HiddenMapRecorder
from siam_tracking_ros.core.registry import register_tracker
from siam_tracking_ros.core.trackers.base import InitContext
from siam_tracking_ros.core.trackers.siamrpn import SiamRPNConfig, SiamRPNTracker

CLNET_PREFIX = 'clnet.'


@dataclass(frozen=True)
class CLNetConfig(SiamRPNConfig):
    """SiamRPN++ constants with CLNet's tracking constants for UAV data (penalty_k 0.599,
    window influence 0.18, lr 0.751) and the anchor labelling IoUs of section 3.4."""
    penalty_k: float = 0.599
    window_influence: float = 0.18
    lr: float = 0.751
    positive_iou: float = 0.6
    negative_iou: float = 0.3


def positions_from_anchor_labels(positive: np.ndarray | torch.Tensor,
                                 negative: np.ndarray | torch.Tensor):
    """Score-map positions forming the positive and negative hidden-vector sets.

    CLNet's hidden map has one vector per position while labels are per anchor ``(..., A, H, W)``:
    a position is positive when any of its anchors is positive, negative when one of its anchors
    is negative and none is positive. Returns two boolean ``(..., H, W)`` masks.
    """
    positive = torch.as_tensor(positive, dtype=torch.bool)
    negative = torch.as_tensor(negative, dtype=torch.bool)
    positive_positions = positive.any(dim=-3)
    negative_positions = negative.any(dim=-3) & ~positive_positions
    return positive_positions, negative_positions


class CLNetTracker(SiamRPNTracker):
    """SiamRPN++ whose cls/loc last layers are adjusted from the first frame's samples."""

    def build_model(self, config: CLNetConfig):
        model = super().build_model(config)
        model.add_module('clnet', CLNetModules(model.rpn_head))
        return model

    def first_frame_sets(self, box: np.ndarray, geometry) -> tuple[torch.Tensor, torch.Tensor]:
        """Positive / negative position masks ``(1, H, W)`` of the first frame's search crop."""
        positive, negative = self.label_anchors(geometry, box, self.config.positive_iou,
                                                self.config.negative_iou)
        if not positive.any():
            # A target too small or too elongated for every anchor: keep the best-overlapping
            # anchor as the one positive sample rather than build no positive set at all.
            overlap = self.anchor_iou(geometry, box)
            positive = overlap == overlap.max()
        positive_positions, negative_positions = positions_from_anchor_labels(positive, negative)
        return (positive_positions[None].to(self.device),
                negative_positions[None].to(self.device))

    def anchor_iou(self, geometry, box) -> np.ndarray:
        """IoU ``(A, H, W)`` of every anchor of ``geometry`` with the 0-based ``box``."""
        anchors = self.anchor_boxes_in_image(geometry)
        return boxes.iou(np.asarray(box, dtype=np.float64),
                         anchors.reshape(-1, 4)).reshape(anchors.shape[:-1])

    def on_init(self, context: InitContext) -> None:
        geometry = self.search_geometry()
        _, search_features = self.search_frame(context.image, geometry)
        with HiddenMapRecorder(self.model.rpn_head) as recorder:
            self.model(context.template_features, search_features)
        positive, negative = self.first_frame_sets(context.box, geometry)
        self.head_param_deltas = self.model.clnet(recorder.maps, positive, negative)


# A CLNet weights file holds the base network and ``clnet.*``: a base-only file (pysot's
# SiamRPN++) lacks the adjustment network, so each variant loads its own file only.
register_tracker('clnet_r50_l234', CLNetConfig, CLNetTracker, weights_name='clnet_r50_l234')
register_tracker('clnet_alexnet', CLNetConfig, CLNetTracker, weights_name='clnet_alexnet',
                 config=CLNetConfig(backbone='alexnet', instance_size=287, base_size=0))
