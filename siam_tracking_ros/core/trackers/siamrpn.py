"""SiamRPN / SiamRPN++ with pysot's tracking procedure, constants and long-term LOST handling."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

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
        self._anchors: dict[int, torch.Tensor] = {}
        self._windows: dict[int, torch.Tensor] = {}

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
        side = self.template_side(self.size) * out_size / self.config.exemplar_size
        return CropGeometry(center=self.center.copy(), side=side, out_size=out_size)

    def run_head(self, template_features, search_features) -> RPNOutput:
        cls, loc = self.model(template_features, search_features, self.head_param_deltas)
        return RPNOutput(cls, loc)

    def score_map(self, head_output: RPNOutput, frame: FrameContext) -> torch.Tensor:
        """Foreground probability ``(A, H, W)`` of the first search crop."""
        cls = head_output.cls[0].float()
        return cls.reshape(2, self.anchor_num, *cls.shape[-2:]).softmax(dim=0)[1]

    def locate(self, score_map: torch.Tensor, frame: FrameContext) -> Localisation:
        config = self.config
        score_size = score_map.shape[-1]
        predicted = self.decode(frame.head_output.loc, score_size)
        crop_per_image = 1.0 / frame.geometry.image_pixels_per_crop_pixel()
        target = self.size * crop_per_image
        penalty = windows.siamrpn_penalty(predicted[..., 2], predicted[..., 3], float(target[0]),
                                          float(target[1]), config.penalty_k)
        influence = self.window_influence()
        penalised = self.modify_penalised_score(penalty * score_map, frame)
        penalised = penalised * (1 - influence) + self.window(score_size) * influence
        best = torch.argmax(penalised)
        picked = torch.cat([predicted.reshape(-1, 4)[best], penalty.reshape(-1)[best, None],
                            score_map.reshape(-1)[best, None]]).cpu().numpy().astype(np.float64)
        box_in_image = picked[:4] / crop_per_image
        penalty_best, score = picked[4], picked[5]
        rate = penalty_best * score * config.lr
        center = self.center + box_in_image[:2]
        size = self.size * (1 - rate) + box_in_image[2:] * rate
        anchor, rest = divmod(int(best), score_size * score_size)
        return Localisation(center=center, size=size, score=float(score),
                            details={'best_index': (anchor, *divmod(rest, score_size)),
                                     'penalty': float(penalty_best), 'lr': float(rate)})

    def modify_penalised_score(self, penalised: torch.Tensor,
                               frame: FrameContext) -> torch.Tensor:
        """Change ``penalty * score`` ``(A, S, S)`` before the cosine window. The size learning
        rate keeps coming from the unmodified ``penalty * score``. Identity here."""
        return penalised

    # ------------------------------------------------------------------ helpers
    def anchors(self, score_size: int) -> torch.Tensor:
        """``(A, S, S, 4)`` anchors ``(cx, cy, w, h)`` in crop pixels from the crop centre."""
        if score_size not in self._anchors:
            grid = anchor_grid(score_size, self.config.anchor_stride, self.config.anchor_ratios,
                               self.config.anchor_scales)
            self._anchors[score_size] = torch.as_tensor(grid, dtype=torch.float32,
                                                        device=self.device)
        return self._anchors[score_size]

    def window(self, score_size: int) -> torch.Tensor:
        """pysot's unnormalised cosine window, the same for every anchor ``(A, S, S)``."""
        if score_size not in self._windows:
            window = torch.as_tensor(windows.hanning_window(score_size), dtype=torch.float32,
                                     device=self.device)
            self._windows[score_size] = window.expand(self.anchor_num, -1, -1)
        return self._windows[score_size]

    def decode(self, loc: torch.Tensor, score_size: int) -> torch.Tensor:
        """Boxes ``(A, S, S, 4)`` ``(cx, cy, w, h)`` in crop pixels from the first crop's loc."""
        deltas = loc[0].float().reshape(4, self.anchor_num, score_size, score_size)
        return decode_deltas(deltas, self.anchors(score_size))

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

    def label_anchors(self, geometry: CropGeometry, box, positive_iou: float = 0.6,
                      negative_iou: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
        """Boolean ``(A, S, S)`` masks: anchors with IoU > ``positive_iou`` with the 0-based
        ``box``, and anchors with IoU < ``negative_iou``."""
        anchors = self.anchor_boxes_in_image(geometry)
        overlap = boxes.iou(np.asarray(box, dtype=np.float64), anchors.reshape(-1, 4))
        overlap = overlap.reshape(anchors.shape[:-1])
        return overlap > positive_iou, overlap < negative_iou

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
