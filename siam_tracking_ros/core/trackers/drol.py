"""DROL: Discriminative and Robust Online Learning for Siamese trackers (Zhou et al., AAAI 2020).

DROL attaches an online classification subnet to an unchanged Siamese tracker, through the base
tracker's hooks:
- `on_init`: the classifier is fitted on 30 augmented samples of the first frame's search region
  (section 4.1);
- `modify_score_map`: discriminative learning, the online score fused with the Siamese score
  before the penalty and window (eq. 5);
- `locate`: robust learning, the Siamese subnet also matches the short-term template z_s and its
  result is used when eq. (7) allows;
- `on_tracked`: Algorithm 1, the sample memory / filter update and the choice of the next z_s
  (eq. 6).
DROL adds no offline-trained weights: each variant loads the checkpoint of its base.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from siam_tracking_ros.core import boxes
from siam_tracking_ros.core.online.augment import (AugmentationConfig, augment_first_frame,
                                                   expanded_patch_size)
from siam_tracking_ros.core.online.classifier import OnlineClassifier, OnlineClassifierConfig
from siam_tracking_ros.core.online.fusion import fuse_scores, min_max_normalise, resample_to_grid
from siam_tracking_ros.core.online.template_update import (ShortTermTemplateSelector,
                                                           adopt_short_term)
from siam_tracking_ros.core.registry import default_config, register_tracker
from siam_tracking_ros.core.trackers.base import (FrameContext, InitContext, Localisation,
                                                  TrackResult, TrackState)
from siam_tracking_ros.core.trackers.siamfc import SiamFCConfig, SiamFCTracker
from siam_tracking_ros.core.trackers.siamrpn import SiamRPNConfig, SiamRPNTracker


@dataclass(frozen=True)
class DROLSettings(OnlineClassifierConfig, AugmentationConfig):
    """DROL's switches on top of the classifier and augmentation constants (all flat, so each one
    can be overridden as `key=value`, e.g. to re-run Table 5's ablation).

    fusion / fusion_weight: eq. (5) on or off and its lambda (0.8 for DROL-RPN; for DROL-FC the
    paper uses 0.8 on OTB-like data and 0.6 on VOT, 0.8 is the default for UAV footage).
    online_update: keep optimising the filter during tracking (Algorithm 1); off leaves the
    first-frame classifier unchanged.
    template_update / template_interval (T) / template_score_threshold (tau_c) /
    template_iou_threshold (v_r) / template_score_gain (v_c): eqs. (6)-(7).
    classifier_layer: which backbone layer feeds the classifier when the base has several.
    """
    fusion: bool = True
    fusion_weight: float = 0.8
    online_update: bool = True
    template_update: bool = True
    template_interval: int = 5
    template_score_threshold: float = 0.75
    template_iou_threshold: float = 0.6
    template_score_gain: float = 0.5
    classifier_layer: int = -1

    def __post_init__(self):
        OnlineClassifierConfig.__post_init__(self)
        AugmentationConfig.__post_init__(self)
        if not 0.0 <= self.fusion_weight <= 1.0:
            raise ValueError(f"fusion_weight (lambda) must be in [0, 1], got {self.fusion_weight}")
        if self.template_interval < 1:
            raise ValueError(f"template_interval (T) must be >= 1, got {self.template_interval}")
        if not 0.0 <= self.template_iou_threshold <= 1.0:
            raise ValueError("template_iou_threshold (v_r) must be in [0, 1], got "
                             f"{self.template_iou_threshold}")


def _run_post_inits(config: Any, *classes: type) -> None:
    for cls in classes:
        post_init = cls.__dict__.get("__post_init__")
        if post_init is not None:
            post_init(config)


@dataclass(frozen=True)
class DROLFCConfig(SiamFCConfig, DROLSettings):
    """SiamFC constants + DROL settings; v_c is 0.1 for DROL-FC (reference implementation)."""
    template_score_gain: float = 0.1

    def __post_init__(self):
        _run_post_inits(self, SiamFCConfig, DROLSettings)


@dataclass(frozen=True)
class DROLRPNConfig(SiamRPNConfig, DROLSettings):
    """SiamRPN++ constants + DROL settings."""

    def __post_init__(self):
        _run_post_inits(self, SiamRPNConfig, DROLSettings)


@dataclass
class OnlineFrame:
    """The online subnet's view of one frame, kept in `FrameContext.extras['drol']`."""
    embedded: torch.Tensor          # (S, 64, H, W) target-specific features of each search crop
    scores: torch.Tensor            # (S, M, M) f_C of each search crop
    short_term_adopted: bool = False


@dataclass(frozen=True)
class _TemplateCandidate:
    image: torch.Tensor
    box: np.ndarray


class DROLMixin(abc.ABC):
    """DROL on top of a SiameseTracker subclass (listed before it in the bases).

    The concrete classes say how their Siamese score relates to a probability
    (`siamese_probability`, `from_probability`, `siamese_score_at`), which scale a
    localisation picked (`scale_index_of`) and the stride of their maps (`map_stride`).
    """

    config: DROLSettings
    config_class: type   # the DROL config class the concrete tracker needs

    def __init__(self, config: DROLSettings, device="cpu", half: bool = False):
        if not isinstance(config, self.config_class):
            raise ValueError(f"{type(self).__name__} needs a {self.config_class.__name__}, "
                             f"got {type(config).__name__}")
        super().__init__(config, device, half)

    # ----- first frame (section 4.1, "Training phase") -----------------------------------------

    def on_init(self, context: InitContext) -> None:
        super().on_init(context)
        config = self.config
        geometry = self.search_geometry()
        out_size = geometry.out_size
        patch_size = expanded_patch_size(out_size, config)
        crop_pixels = geometry.side / out_size     # image pixels per crop pixel at scale 1
        patch = self.crop(context.image, self.center, [crop_pixels * patch_size], patch_size)
        augmented = augment_first_frame(patch[0].permute(1, 2, 0).float().cpu().numpy(),
                                        out_size, config)
        images = torch.from_numpy(augmented.images).permute(0, 3, 1, 2)
        features = self.classifier_features(self.transform_search_features(
            self.extract_features(images.to(self.device, self.dtype))))
        stride = self.map_stride()
        offsets = torch.from_numpy(augmented.target_offsets / stride).float()
        self.classifier = OnlineClassifier(features.shape[1], config, self.device)
        self.classifier.initialise(features, offsets, self._size_in_cells(crop_pixels),
                                   dropout_copies=config.dropout_samples,
                                   dropout_probability=config.dropout_probability)
        self.template_selector = ShortTermTemplateSelector(config.template_interval,
                                                           config.template_score_threshold)
        self.short_term_template = None

    def classifier_features(self, search_features) -> torch.Tensor:
        """The backbone feature map the classifier reads: (S, C, H, W)."""
        if isinstance(search_features, torch.Tensor):
            return search_features
        layers = list(search_features)
        index = self.config.classifier_layer
        if not -len(layers) <= index < len(layers):
            raise ValueError(f"classifier_layer {index} is out of range for {len(layers)} "
                             "feature layers")
        return layers[index]

    def _size_in_cells(self, crop_pixels: float) -> tuple[float, float]:
        cell = crop_pixels * self.map_stride()
        return float(self.size[0] / cell), float(self.size[1] / cell)

    # ----- discriminative learning (section 3.3, eq. 5) ----------------------------------------

    def modify_score_map(self, score_map: torch.Tensor, frame: FrameContext) -> torch.Tensor:
        score_map = super().modify_score_map(score_map, frame)
        embedded, scores = self.classifier.classify(
            self.classifier_features(frame.search_features))
        frame.extras["drol"] = OnlineFrame(embedded=embedded, scores=scores)
        return self.fuse_online(score_map, frame)

    def fuse_online(self, score_map: torch.Tensor, frame: FrameContext) -> torch.Tensor:
        """Eq. (5) on a Siamese score map of this frame (the first or the short-term template)."""
        config = self.config
        if not config.fusion:
            return score_map
        stride = self.map_stride()
        online = resample_to_grid(frame.extras["drol"].scores, stride, score_map.shape[-1], stride)
        fused = fuse_scores(self.siamese_probability(score_map), min_max_normalise(online),
                            config.fusion_weight)
        return self.from_probability(fused)

    # ----- robust learning (section 3.4, eq. 7) ------------------------------------------------

    def locate(self, score_map: torch.Tensor, frame: FrameContext) -> Localisation:
        first = super().locate(score_map, frame)
        first.score = self.siamese_score_at(frame.raw_score_map, first)
        if not self.config.template_update or self.short_term_template is None:
            return first
        short_frame = dataclasses.replace(frame, extras=dict(frame.extras))
        short_frame.template_features = self.transform_template_features(self.short_term_template)
        short_frame.head_output = self.run_head(short_frame.template_features,
                                                frame.search_features)
        short_frame.raw_score_map = self.score_map(short_frame.head_output, short_frame)
        short_frame.score_map = self.fuse_online(short_frame.raw_score_map, frame)
        short = super().locate(short_frame.score_map, short_frame)
        short.score = self.siamese_score_at(short_frame.raw_score_map, short)
        adopted = adopt_short_term(_xywh(short), short.score, _xywh(first), first.score,
                                   self.config.template_iou_threshold,
                                   self.config.template_score_gain)
        frame.extras["drol"].short_term_adopted = adopted
        return short if adopted else first

    # ----- Algorithm 1: classifier update and the next short-term template ---------------------

    def on_tracked(self, result: TrackResult, frame: FrameContext) -> None:
        super().on_tracked(result, frame)
        config = self.config
        if self.state is not TrackState.TRACKING or frame.geometry.out_size != config.instance_size:
            # A widened search after losing the target adds nothing (section 4.2, VOT2018-LT).
            return
        online: OnlineFrame = frame.extras["drol"]
        scale_index = self.scale_index_of(frame.localisation)
        crop_pixels = frame.geometry.image_pixels_per_crop_pixel(scale_index)
        target_size = self._size_in_cells(crop_pixels)
        analysis = self.classifier.analyse(online.scores[scale_index], target_size)
        if config.online_update:
            offset = (self.center - frame.geometry.center) / (crop_pixels * self.map_stride())
            self.classifier.update(online.embedded[scale_index:scale_index + 1], analysis,
                                   (float(offset[0]), float(offset[1])), target_size)
        if config.template_update:
            candidate = self.template_selector.observe(
                frame.frame_index, analysis.peak_score, _TemplateCandidate(frame.image, result.box))
            if candidate is not None:
                # eq. (6): warp the chosen frame at its box to the template size.
                self.short_term_template = self.compute_template(candidate.image, candidate.box)

    # ----- per-base pieces ---------------------------------------------------------------------

    @abc.abstractmethod
    def map_stride(self) -> int:
        """Crop pixels between neighbouring cells of the backbone feature and score maps."""

    @abc.abstractmethod
    def siamese_probability(self, score_map: torch.Tensor) -> torch.Tensor:
        """The Siamese classification score as a probability f_M^cls in [0, 1]."""

    @abc.abstractmethod
    def from_probability(self, probability: torch.Tensor) -> torch.Tensor:
        """Inverse of `siamese_probability`: what the base's `locate` expects."""

    @abc.abstractmethod
    def siamese_score_at(self, raw_score_map: torch.Tensor, localisation: Localisation) -> float:
        """f_M^cls (probability) of a raw score map at the localisation's best position."""

    def scale_index_of(self, localisation: Localisation) -> int:
        """Search scale the localisation was found at (single-scale bases: 0)."""
        return 0


def _xywh(localisation: Localisation) -> np.ndarray:
    return boxes.center_size_to_xywh(np.concatenate([localisation.center, localisation.size]))


class DROLFCTracker(DROLMixin, SiamFCTracker):
    """DROL-FC. SiamFC's response is a logit (its training loss is logistic), so the score fused
    in eq. (5) is sigmoid(response), and the fused probability goes back to a logit so that the
    SiamFC localisation (upsampling, scale penalty, window) runs unchanged on it."""

    config_class = DROLFCConfig

    def map_stride(self) -> int:
        return self.config.total_stride

    def siamese_probability(self, score_map: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(score_map)

    def from_probability(self, probability: torch.Tensor) -> torch.Tensor:
        return torch.logit(probability, eps=1e-6)

    def siamese_score_at(self, raw_score_map: torch.Tensor, localisation: Localisation) -> float:
        scale_index, row, col = localisation.details["best_index"]
        upsampled = self.upsample(raw_score_map[scale_index:scale_index + 1])
        return float(torch.sigmoid(upsampled[0, row, col]))

    def scale_index_of(self, localisation: Localisation) -> int:
        return localisation.details["best_index"][0]


class DROLRPNTracker(DROLMixin, SiamRPNTracker):
    """DROL-RPN. The SiamRPN++ score is already a foreground probability."""

    config_class = DROLRPNConfig

    def map_stride(self) -> int:
        return self.config.anchor_stride

    def siamese_probability(self, score_map: torch.Tensor) -> torch.Tensor:
        return score_map

    def from_probability(self, probability: torch.Tensor) -> torch.Tensor:
        return probability

    def siamese_score_at(self, raw_score_map: torch.Tensor, localisation: Localisation) -> float:
        anchor, row, col = localisation.details["best_index"]
        return float(raw_score_map[anchor, row, col])


def drol_config(config_cls: type, base_name: str, **overrides):
    """The DROL config of `config_cls` carrying the registered base tracker's constants."""
    base = default_config(base_name)
    values = {field.name: getattr(base, field.name) for field in dataclasses.fields(base)}
    return config_cls(**{**values, **overrides})


register_tracker("drol_fc", DROLFCConfig, DROLFCTracker, weights_name="siamfc_alexnet",
                 config=drol_config(DROLFCConfig, "siamfc_alexnet"))
register_tracker("drol_rpn_alexnet", DROLRPNConfig, DROLRPNTracker, weights_name="siamrpn_alexnet",
                 config=drol_config(DROLRPNConfig, "siamrpn_alexnet"))
# ResNet-50: the layer-3 features feed the classifier, the depth the ATOM-style classifier reads.
register_tracker("drol_rpn_r50_l234", DROLRPNConfig, DROLRPNTracker,
                 weights_name="siamrpn_r50_l234",
                 config=drol_config(DROLRPNConfig, "siamrpn_r50_l234", classifier_layer=1))
