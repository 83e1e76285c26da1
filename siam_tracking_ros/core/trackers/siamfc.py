"""SiamFC (Bertinetto et al. 2016) with siamfc-pytorch's tracking procedure and constants."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from siam_tracking_ros.core import boxes, windows
from siam_tracking_ros.core.models.siamese import SiamFCNet
from siam_tracking_ros.core.registry import register_tracker
from siam_tracking_ros.core.trackers.base import (CropGeometry, FrameContext, Localisation,
                                                  SiameseTracker, TrackerConfig,
                                                  check_common_config)



def cubic_resize(maps: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, M, M)`` maps -> ``(B, size, size)`` float32 on the CPU: each map resized by
    ``cv2.resize`` INTER_CUBIC on its float32 numpy array, as siamfc-pytorch upsamples its
    responses (DROL-FC resizes its online map onto them the same way)."""
    if maps.dim() != 3 or maps.shape[-1] != maps.shape[-2]:
        raise ValueError(f"maps must be B x M x M, got {tuple(maps.shape)}")
    arrays = maps.detach().float().cpu().numpy()
    return torch.from_numpy(np.stack([
        cv2.resize(array, (size, size), interpolation=cv2.INTER_CUBIC) for array in arrays]))

@dataclass(frozen=True)
class SiamFCConfig(TrackerConfig):
    """siamfc-pytorch's constants; LOST handling is this project's addition.

    The score is the logistic probability ``sigmoid(response)`` that SiamFC's training loss
    gives the response; the lost / recover thresholds on it have no reference value, and the
    default ``lost_threshold`` 0 tracks as siamfc-pytorch does (never lost; the node sets its
    own thresholds). While lost
    the search crop grows to ``lost_instance_size`` at the same pixel scale (a wider area, a
    larger response map) and the cosine window's weight drops to ``lost_window_influence``.
    """
    exemplar_size: int = 127
    instance_size: int = 255
    context_amount: float = 0.5
    scale_num: int = 3
    scale_step: float = 1.0375
    scale_lr: float = 0.59
    scale_penalty: float = 0.9745
    window_influence: float = 0.176
    response_up: int = 16
    total_stride: int = 8
    out_scale: float = 0.001
    lost_threshold: float = 0.0
    recover_threshold: float = 0.5
    lost_instance_size: int = 511
    lost_window_influence: float = 0.001


class SiamFCTracker(SiameseTracker):
    """Three-scale SiamFC: x16 bicubic response upsampling, scale penalty, cosine window."""

    default_colour_order = 'RGB'
    crop_corner_rule = 'siamfc'
    config_class = SiamFCConfig

    def __init__(self, config: SiamFCConfig, device='cpu', half: bool = False):
        super().__init__(config, device, half)
        self.scale_factors = windows.siamfc_scale_factors(config.scale_num, config.scale_step)
        # On the CPU, beside the upsampled responses.
        self._scale_penalties = torch.as_tensor(
            windows.siamfc_scale_penalties(config.scale_num, config.scale_penalty),
            dtype=torch.float32)
        self._windows: dict[int, np.ndarray] = {}

    def validate_config(self, config: SiamFCConfig) -> None:
        check_common_config(config, config.total_stride)
        if config.scale_num < 1 or config.scale_num % 2 == 0:
            raise ValueError(f'scale_num must be a positive odd number, got {config.scale_num}')

    def build_model(self, config: SiamFCConfig):
        return SiamFCNet(out_scale=config.out_scale)

    # ------------------------------------------------------------------ hooks
    def compute_template(self, image: torch.Tensor, box: np.ndarray):
        center = boxes.xywh_to_center_size(box)[:2]
        crop = self.crop(image, center, [self.template_side(box[2:])], self.config.exemplar_size)
        return self.extract_features(crop)

    def search_geometry(self) -> CropGeometry:
        out_size = self.search_size()
        side = self.template_side(self.size) * out_size / self.config.exemplar_size
        return CropGeometry(center=self.center.copy(), side=side, out_size=out_size,
                            scale_factors=self.scale_factors)

    def crop_search(self, image, geometry: CropGeometry) -> torch.Tensor:
        """The scales' crops in channels_last memory: siamfc-pytorch stacks its HWC crops and
        permutes them, so its batch reaches the backbone as NHWC, while its exemplar (one crop,
        unsqueezed) runs the NCHW kernels. In fp32 the two layouts' sums differ in the last bits
        (a few 1e-6 relative), enough to move the peak of a near-flat response by one upsampled
        cell."""
        crops = super().crop_search(image, geometry)
        return crops.contiguous(memory_format=torch.channels_last)

    def run_head(self, template_features, search_features) -> torch.Tensor:
        return self.model(template_features, search_features)

    def score_map(self, head_output: torch.Tensor, frame: FrameContext) -> torch.Tensor:
        return head_output[:, 0].float()

    def locate(self, score_map: torch.Tensor, frame: FrameContext) -> Localisation:
        """siamfc-pytorch's ``update`` on its own arrays and in its order: the float32 numpy
        responses resized by OpenCV, penalised, the scale of the highest peak, its response
        min-shifted and divided by ``sum + 1e-16`` in float32, mixed with the float64 window,
        argmax. Near-equal peaks are then decided exactly as the reference decides them."""
        config = self.config
        upsampled = self.upsample(score_map).numpy()
        responses = upsampled.copy()
        middle = len(responses) // 2
        responses[:middle] *= config.scale_penalty
        responses[middle + 1:] *= config.scale_penalty
        scale_index = int(np.argmax(np.amax(responses, axis=(1, 2))))
        response = responses[scale_index]
        response -= response.min()
        response /= response.sum() + 1e-16
        response = self.modify_response(torch.from_numpy(response).to(self.device),
                                        torch.tensor(scale_index, device=self.device), frame)
        response = response.cpu().numpy()
        influence = self.window_influence()
        response = (1 - influence) * response + influence * self.window(response.shape[-1])
        row, col = np.unravel_index(int(response.argmax()), response.shape)
        row, col = int(row), int(col)
        center = self.score_position_to_image(row, col, frame.geometry, scale_index,
                                              upsampled=True)
        scale = (1 - config.scale_lr) + config.scale_lr * self.scale_factors[scale_index]
        score = float(1.0 / (1.0 + np.exp(-float(upsampled[scale_index, row, col]))))
        return Localisation(center=center, size=self.size * scale, score=score,
                            details={'best_index': (scale_index, row, col),
                                     'scale_penalty': float(self._scale_penalties[scale_index])})

    def modify_response(self, response: torch.Tensor, scale_index: torch.Tensor,
                        frame: FrameContext) -> torch.Tensor:
        """Change the chosen scale's upsampled response (normalised to sum 1) before the cosine
        window; ``scale_index`` is the 0-d tensor of the scale chosen from it. Identity here."""
        return response

    # ------------------------------------------------------------------ helpers
    def upsample(self, score_map: torch.Tensor) -> torch.Tensor:
        """``(S, R, R)`` -> ``(S, R*up, R*up)`` float32 on the CPU (``cubic_resize``)."""
        return cubic_resize(score_map, score_map.shape[-1] * self.config.response_up)

    def window(self, size: int) -> np.ndarray:
        """siamfc-pytorch's float64 cosine window, normalised to sum 1, for an upsampled response
        of side ``size`` (cached)."""
        if size not in self._windows:
            self._windows[size] = windows.hanning_window(size, normalise=True)
        return self._windows[size]

    def score_position_to_image(self, rows, cols, geometry: CropGeometry, scale_index: int = 0,
                                upsampled: bool = False) -> np.ndarray:
        """Image points ``(..., 2)`` of response positions (raw or upsampled map) of a scale."""
        config = self.config
        response_size = (geometry.out_size - config.exemplar_size) // config.total_stride + 1
        step = config.total_stride
        if upsampled:
            response_size *= config.response_up
            step = config.total_stride / config.response_up
        centre = (response_size - 1) / 2.0
        offsets = np.stack([np.asarray(cols, dtype=np.float64) - centre,
                            np.asarray(rows, dtype=np.float64) - centre], axis=-1) * step
        return geometry.crop_offset_to_image(offsets, scale_index)

    def clip_to_image(self, center, size):
        """siamfc-pytorch clips nothing; the centre is kept in the image and the size >= 1 px.

        Both are rounded to float32: siamfc-pytorch keeps its centre and size in float32 arrays
        updated in place, and its crop corners round from that state."""
        height, width = self.image_shape
        center = np.clip(np.asarray(center, dtype=np.float64), 0.0, [width, height])
        size = np.maximum(np.asarray(size, dtype=np.float64), 1.0)
        return (center.astype(np.float32).astype(np.float64),
                size.astype(np.float32).astype(np.float64))


register_tracker('siamfc_alexnet', SiamFCConfig, SiamFCTracker)
