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

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from siam_tracking_ros.core.models.clnet import CLNetModules, HiddenMapRecorder
from siam_tracking_ros.core.registry import default_config, register_tracker
from siam_tracking_ros.core.trackers.base import InitContext
from siam_tracking_ros.core.trackers.siamrpn import SiamRPNConfig, SiamRPNTracker

CLNET_PREFIX = 'clnet.'


@dataclass(frozen=True)
class CLNetConfig(SiamRPNConfig):
    """The base SiamRPN++'s tracking constants and the anchor labelling IoUs of section 3.4.

    CLNet adjusts the head only; its tracking procedure is the base's, and the reference's default
    config (``experiments/clnet_r50_l234/config.yaml``) keeps the base's penalty, window and lr.
    Its UAV123 config (penalty 0.599, window 0.18, lr 0.751) is a ResNet-50 tuning for one
    benchmark and is not used: every registered variant takes the constants of its own base.
    ``adjust_head``: False runs the base alone (no delta), the ablation of the adjustment.
    """
    positive_iou: float = 0.6
    negative_iou: float = 0.3
    adjust_head: bool = True


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


def base_fields(base_name: str) -> dict:
    """The registered base tracker's config values, for a CLNet variant on that base."""
    return dataclasses.asdict(default_config(base_name))


class CLNetTracker(SiamRPNTracker):
    """SiamRPN++ whose cls/loc last layers are adjusted from the first frame's samples."""

    def build_model(self, config: CLNetConfig):
        model = super().build_model(config)
        model.add_module('clnet', CLNetModules(model.rpn_head))
        return model

    def first_frame_sets(self, box: np.ndarray,
                         geometry) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Positive / negative position masks ``(1, H, W)`` of the first frame's search crop, or
        None when no anchor passes the positive IoU (a target too small or too elongated for
        every anchor): the reference then leaves the head as it is (its ``init`` runs the
        adjustment only when some anchor label is 1)."""
        positive, negative = self.label_anchors(geometry, box, self.config.positive_iou,
                                                self.config.negative_iou)
        if not positive.any():
            return None
        positive_positions, negative_positions = positions_from_anchor_labels(positive, negative)
        return (positive_positions[None].to(self.device),
                negative_positions[None].to(self.device))

    def on_init(self, context: InitContext) -> None:
        if not self.config.adjust_head:
            return
        geometry = self.search_geometry()
        sets = self.first_frame_sets(context.box, geometry)
        if sets is None:
            return  # plain SiamRPN++ for this sequence
        _, search_features = self.search_frame(context.image, geometry)
        with HiddenMapRecorder(self.model.rpn_head) as recorder:
            self.model(context.template_features, search_features)
        self.head_param_deltas = self.model.clnet(recorder.maps, *sets)


# A CLNet weights file holds the base network and ``clnet.*``: a base-only file (pysot's
# SiamRPN++) lacks the adjustment network, so each variant loads its own file only.
register_tracker('clnet_r50_l234', CLNetConfig, CLNetTracker, weights_name='clnet_r50_l234',
                 config=CLNetConfig(**base_fields('siamrpn_r50_l234')))
register_tracker('clnet_alexnet', CLNetConfig, CLNetTracker, weights_name='clnet_alexnet',
                 config=CLNetConfig(**base_fields('siamrpn_alexnet')))
