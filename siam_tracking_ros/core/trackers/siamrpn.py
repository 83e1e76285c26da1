"""SiamRPN / SiamRPN++ with pysot's tracking procedure, constants and long-term LOST handling."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from siam_tracking_ros.core import boxes, windows
from siam_tracking_ros.core.anchors import (ANCHOR_RATIOS, ANCHOR_SCALES, anchor_grid,
                                            decode_deltas, score_map_size)
from siam_tracking_ros.core.models.siamese import siamrpn_alexnet, siamrpn_r50_l234
from siam_tracking_ros.core.registry import register_tracker
from siam_tracking_ros.core.trackers.base import (CropGeometry, FrameContext, Localisation,
                                                  SiameseTracker, TrackerConfig,
                                                  check_common_config)

BACKBONES = {'alexnet': siamrpn_alexnet, 'resnet50': siamrpn_r50_l234}


@dataclass(frozen=True)
class SiamRPNConfig(TrackerConfig):
    """pysot constants (defaults: ResNet-50 l234 dwxcorr).

    The default is pysot's short-term tracker, the one its published benchmark results come
    from: ``lost_threshold`` 0 never declares the target lost. LOST handling follows pysot's
    long-term tracker: with ``lost_threshold=0.8`` (its CONFIDENCE_LOW) a weaker best score keeps
    the box and switches to the 831 search with window weight 0.001, and a score above
    ``recover_threshold`` (CONFIDENCE_HIGH 0.998) returns to normal tracking. The node sets both
    thresholds from its parameters.
    """
    backbone: str = 'resnet50'
    exemplar_size: int = 127
    instance_size: int = 255
    base_size: int = 8
    context_amount: float = 0.5
    penalty_k: float = 0.05
    window_influence: float = 0.42
    lr: float = 0.38
    anchor_stride: int = 8
    anchor_ratios: tuple = ANCHOR_RATIOS
    anchor_scales: tuple = ANCHOR_SCALES
    lost_threshold: float = 0.0
    recover_threshold: float = 0.998
    lost_instance_size: int = 831
    lost_window_influence: float = 0.001


class RPNOutput(NamedTuple):
    """Raw RPN head output: ``cls`` ``(S, 2A, H, W)`` (A background, then A foreground
    channels), ``loc`` ``(S, 4A, H, W)`` (dx for all anchors, then dy, dw, dh)."""
    cls: torch.Tensor
    loc: torch.Tensor


class SiamRPNTracker(SiameseTracker):
    """Anchor-based Siamese tracker: softmax score, anchor decoding, penalty, window, lr."""

    default_colour_order = 'BGR'
    crop_corner_rule = 'pysot'
    config_class = SiamRPNConfig

    def __init__(self, config: SiamRPNConfig, device='cpu', half: bool = False):
        super().__init__(config, device, half)
        self.anchor_num = len(config.anchor_ratios) * len(config.anchor_scales)
        self.head_param_deltas: dict[str, torch.Tensor] | None = None
        self._anchors: dict[int, np.ndarray] = {}
        self._windows: dict[int, np.ndarray] = {}

    def validate_config(self, config: SiamRPNConfig) -> None:
        if config.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone '{config.backbone}'; use one of {sorted(BACKBONES)}")
        check_common_config(config, config.anchor_stride)

    def build_model(self, config: SiamRPNConfig):
        return BACKBONES[config.backbone](len(config.anchor_ratios) * len(config.anchor_scales))

    def init(self, image_bgr: np.ndarray, box) -> None:
        """Start a sequence; per-sequence head deltas are cleared before ``on_init`` runs."""
        self.head_param_deltas = None
        super().init(image_bgr, box)

    # ------------------------------------------------------------------ hooks
    def compute_template(self, image: torch.Tensor, box: np.ndarray):
        center = boxes.xywh_to_center_size(box)[:2]
        side = round(self.template_side(box[2:]))  # pysot rounds s_z for the template
        return self.extract_features(self.crop(image, center, [side], self.config.exemplar_size))

    def search_geometry(self) -> CropGeometry:
        out_size = self.search_size()
        # pysot: s_x = s_z * (instance / exemplar), in this order.
        side = self.template_side(self.size) * (out_size / self.config.exemplar_size)
        return CropGeometry(center=self.center.copy(), side=side, out_size=out_size)

    def run_head(self, template_features, search_features) -> RPNOutput:
        cls, loc = self.model(template_features, search_features, self.head_param_deltas)
        return RPNOutput(cls, loc)

    def score_map(self, head_output: RPNOutput, frame: FrameContext) -> torch.Tensor:
        """Foreground probability ``(A, H, W)`` of the first search crop: pysot's softmax over
        the ``(A*H*W, 2)`` background / foreground pairs (the same kernel, the same bits)."""
        cls = head_output.cls[0].float()
        pairs = cls.reshape(2, -1).t()
        return F.softmax(pairs, dim=1)[:, 1].reshape(self.anchor_num, *cls.shape[-2:])

    def locate(self, score_map: torch.Tensor, frame: FrameContext) -> Localisation:
        """pysot's ``track`` on its own arrays and in its order: float32 scores and decoded boxes,
        the float64 penalty against the size scaled by ``scale_z = exemplar / s_z``, the float64
        window mix, argmax, the box divided by ``scale_z``. Near-equal candidates are then
        decided exactly as the reference decides them."""
        config = self.config
        score_size = score_map.shape[-1]
        score = score_map.detach().cpu().numpy().reshape(-1)
        predicted = self.decode(frame.head_output.loc, score_size).reshape(-1, 4).T
        # A NumPy float64 as pysot's: a Python float would leave the float32 boxes float32.
        scale_z = np.float64(config.exemplar_size / self.template_side(self.size))
        penalty = windows.siamrpn_penalty(predicted[2], predicted[3], self.size[0], self.size[1],
                                          config.penalty_k, target_scale=scale_z)
        penalised = (penalty * score).reshape(score_map.shape)
        penalised = self.modify_penalised_score(torch.from_numpy(penalised).to(self.device), frame)
        penalised = penalised.cpu().numpy().reshape(-1)
        influence = self.window_influence()
        penalised = penalised * (1 - influence) + self.window(score_size) * influence
        best = int(np.argmax(penalised))
        box_in_image = predicted[:, best] / scale_z
        rate = penalty[best] * score[best] * config.lr
        center = self.center + box_in_image[:2]
        size = self.size * (1 - rate) + box_in_image[2:] * rate
        anchor, rest = divmod(best, score_size * score_size)
        return Localisation(center=center, size=size, score=float(score[best]),
                            details={'best_index': (anchor, *divmod(rest, score_size)),
                                     'penalty': float(penalty[best]), 'lr': float(rate)})

    def modify_penalised_score(self, penalised: torch.Tensor,
                               frame: FrameContext) -> torch.Tensor:
        """Change ``penalty * score`` ``(A, S, S)`` before the cosine window. The size learning
        rate keeps coming from the unmodified ``penalty * score``. Identity here."""
        return penalised

    # ------------------------------------------------------------------ helpers
    def anchors(self, score_size: int) -> np.ndarray:
        """``(A, S, S, 4)`` float32 anchors ``(cx, cy, w, h)`` in crop pixels from the crop
        centre (pysot's float32 anchors)."""
        if score_size not in self._anchors:
            grid = anchor_grid(score_size, self.config.anchor_stride, self.config.anchor_ratios,
                               self.config.anchor_scales)
            self._anchors[score_size] = grid.astype(np.float32)
        return self._anchors[score_size]

    def window(self, score_size: int) -> np.ndarray:
        """pysot's unnormalised float64 cosine window tiled over the anchors ``(A*S*S,)``."""
        if score_size not in self._windows:
            self._windows[score_size] = np.tile(windows.hanning_window(score_size).reshape(-1),
                                                self.anchor_num)
        return self._windows[score_size]

    def decode(self, loc: torch.Tensor, score_size: int) -> np.ndarray:
        """Boxes ``(A, S, S, 4)`` float32 ``(cx, cy, w, h)`` in crop pixels from the first crop's
        loc, decoded with NumPy as pysot does."""
        deltas = loc[0].detach().float().cpu().numpy()
        return decode_deltas(deltas.reshape(4, self.anchor_num, score_size, score_size),
                             self.anchors(score_size))

    def score_size(self, geometry: CropGeometry) -> int:
        return score_map_size(geometry.out_size, self.config.exemplar_size,
                              self.config.anchor_stride, self.config.base_size)

    def anchor_boxes_in_image(self, geometry: CropGeometry) -> np.ndarray:
        """Anchors of ``geometry``'s score map as 0-based image ``xywh`` ``(A, S, S, 4)``."""
        grid = anchor_grid(self.score_size(geometry), self.config.anchor_stride,
                           self.config.anchor_ratios, self.config.anchor_scales)
        pixels = geometry.image_pixels_per_crop_pixel()
        center_size = np.concatenate([geometry.crop_offset_to_image(grid[..., :2]),
                                      grid[..., 2:] * pixels], axis=-1)
        return boxes.center_size_to_xywh(center_size.reshape(-1, 4)).reshape(grid.shape)

    def anchor_overlaps(self, geometry: CropGeometry, box) -> np.ndarray:
        """``(A, S, S)`` IoU of every anchor of the crop ``geometry`` with the 0-based ``box``."""
        anchors = self.anchor_boxes_in_image(geometry)
        overlap = boxes.iou(np.asarray(box, dtype=np.float64), anchors.reshape(-1, 4))
        return overlap.reshape(anchors.shape[:-1])

    def score_position_to_image(self, rows, cols, geometry: CropGeometry) -> np.ndarray:
        """Image points ``(..., 2)`` of score-map positions (the anchor centres)."""
        half = self.score_size(geometry) // 2
        offsets = np.stack([np.asarray(cols, dtype=np.float64) - half,
                            np.asarray(rows, dtype=np.float64) - half], axis=-1)
        return geometry.crop_offset_to_image(offsets * self.config.anchor_stride)


register_tracker('siamrpn_r50_l234', SiamRPNConfig, SiamRPNTracker)
register_tracker('siamrpn_alexnet', SiamRPNConfig, SiamRPNTracker,
                 config=SiamRPNConfig(backbone='alexnet', instance_size=287, base_size=0,
                                      penalty_k=0.16, window_influence=0.40, lr=0.30))
