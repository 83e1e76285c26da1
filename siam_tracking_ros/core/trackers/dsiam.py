"""DSiam / DSiamM (Guo et al., ICCV 2017): SiamFC with online transforms learned in closed form.

Each frame DSiam correlates a transformed template with transformed search features:

    S_t^l = corr(V_{t-1}^l * f^l(O_1), W_{t-1}^l * f^l(Z_t))                    eq. (2)

V (target appearance variation, eqs. 5-6) regresses the first template's features onto those of
the latest target, W (background suppression, eqs. 7-8) regresses the features of the region G
around the latest target onto those of its Gaussian-weighted copy G-bar; both are solved in the
Fourier domain by ``core.fourier``. DSiamM fuses conv4 and conv5 responses with element-wise
weight maps that sum to one (eq. 9).

The update rules follow the official (MATLAB) code: the regression statistics are blended over
time with rates 0.49 (V) and 0.29 (W), lambda_v = 1e-5 and lambda_w = 10 for SiamFC features,
scale learning rate 0.58, search side clamped to 0.2x-5x its initial value, transforms updated
only when the peak of the fused response is > 0; otherwise they are switched off and the search
side grows by x1.1.

Trainable parts (section 3.5): ``DynamicSiamese`` holds the fusion maps and the two lambdas;
``clip_responses`` is its differentiable forward over a short clip and ``clip_loss`` the logistic
loss of eq. (10).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from siam_tracking_ros.core.fourier import (RegressionStatistics, TransformSpectrum,
                                            gaussian_weight_map, regression_statistics,
                                            transform_from_statistics)
from siam_tracking_ros.core.models.alexnet import SiamFCAlexNet
from siam_tracking_ros.core.registry import register_tracker
from siam_tracking_ros.core.trackers.base import CropGeometry, FrameContext, InitContext
from siam_tracking_ros.core.trackers.sa_siam import ExtendedSiamFCTracker
from siam_tracking_ros.core.trackers.siamfc import SiamFCConfig

# siamfc-pytorch's AlexNet stages in order; "conv4" is the output of its ReLU (relu4), "conv5"
# the final (linear) conv, the two layers the paper uses (section 3.6).
ALEXNET_STAGES = ("conv1", "conv2", "conv3", "conv4", "conv5")
FUSION_REFERENCE_LAYER = "conv5"

Features = dict[str, torch.Tensor]


def alexnet_layer_features(backbone: SiamFCAlexNet, crops: torch.Tensor,
                           layers: tuple[str, ...]) -> Features:
    """Outputs of the requested stages of a siamfc-pytorch AlexNet, running its stages in order.

    The backbone's own ``forward`` returns conv5 only; DSiamM also needs conv4 (relu4), so the
    same stages are run one after the other and the requested outputs kept.
    """
    unknown = [layer for layer in layers if layer not in ALEXNET_STAGES]
    if unknown:
        raise ValueError(f"unknown AlexNet layers {unknown}; available: {ALEXNET_STAGES}")
    last = max(ALEXNET_STAGES.index(layer) for layer in layers)
    outputs = {}
    activations = crops
    for stage in ALEXNET_STAGES[:last + 1]:
        activations = getattr(backbone, stage)(activations)
        if stage in layers:
            outputs[stage] = activations
    return outputs


# ---------------------------------------------------------------------- online transforms
@dataclass(frozen=True)
class LayerObservation:
    """Regression statistics of one layer from one frame: V's (eq. 5) and W's (eq. 7)."""

    variation: RegressionStatistics
    suppression: RegressionStatistics


@dataclass(frozen=True)
class AdaptationState:
    """Blended regression statistics per layer; empty means the transforms are switched off."""

    layers: Mapping[str, LayerObservation] = dataclasses.field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.layers)

    def updated(self, observation: Mapping[str, LayerObservation], variation_rate: float,
                suppression_rate: float) -> "AdaptationState":
        """Blend a new frame's statistics in (the first observation is taken as it is).

        Both spectra of eq. (4) are blended, as correlation-filter trackers blend their
        numerator and denominator; for V the denominator depends on f(O_1) only, so this is the
        same as blending the target features f(O_t) the regression aims at.
        """
        if not self.active:
            return AdaptationState(dict(observation))
        return AdaptationState({
            layer: LayerObservation(
                variation=self.layers[layer].variation.blend(new.variation, variation_rate),
                suppression=self.layers[layer].suppression.blend(new.suppression,
                                                                 suppression_rate))
            for layer, new in observation.items()})


def observe_frame(first_target: Features, latest_target: Features, region: Features,
                  highlighted_region: Features) -> dict[str, LayerObservation]:
    """Statistics of eq. (5) (f(O_1) -> f(O_t)) and eq. (7) (f(G_t) -> f(G-bar_t)) per layer.

    Eq. (8) as printed has F_G in both numerator factors; the objective of eq. (7) regresses F_G
    onto F_G-bar, so the numerator here is conj(F(F_G)) . F(F_G-bar).

    Feature tensors may be in half precision on the GPU; the Fourier solve runs in float32.
    """
    return {
        layer: LayerObservation(
            variation=regression_statistics(first_target[layer].float(),
                                            latest_target[layer].float()),
            suppression=regression_statistics(region[layer].float(),
                                              highlighted_region[layer].float()))
        for layer in first_target}


def highlight_region(regions: torch.Tensor, target_sizes: torch.Tensor,
                     sigma_factor: float) -> torch.Tensor:
    """G-bar: region crops ``(N, 3, s, s)`` times a centred Gaussian (section 3.2, Fig. 3).

    ``target_sizes`` ``(N, 2)``: target ``(w, h)`` in crop pixels. The paper does not give the
    Gaussian's width; it is ``sigma_factor`` times the target's width / height, so that the map
    keeps the target and fades the surroundings.
    """
    if target_sizes.shape != (regions.shape[0], 2):
        raise ValueError(f"need one (w, h) target size per region: {regions.shape[0]} regions, "
                         f"target sizes of shape {tuple(target_sizes.shape)}")
    size = regions.shape[-1]
    maps = [gaussian_weight_map(size, size, sigma_y=float(sigma_factor * h),
                                sigma_x=float(sigma_factor * w), device=regions.device,
                                dtype=regions.dtype)
            for w, h in target_sizes.tolist()]
    return regions * torch.stack(maps)[:, None]


class DynamicSiamese(nn.Module):
    """DSiam's learnable parameters: lambda_v, lambda_w (eqs. 5, 7) and fusion maps (eq. 9).

    The lambdas are stored as logarithms so that gradient descent keeps them positive. The fusion
    maps are stored for every layer but conv5, whose map is one minus their sum: the maps sum to
    one by construction (eq. 9), and at initialisation conv5's map is all ones and the others all
    zeros (section 3.6).
    """

    def __init__(self, layers: tuple[str, ...], response_size: int,
                 variation_regulariser: float, suppression_regulariser: float) -> None:
        super().__init__()
        if FUSION_REFERENCE_LAYER not in layers:
            raise ValueError(f"DSiam layers must include {FUSION_REFERENCE_LAYER}, got {layers}")
        if variation_regulariser <= 0 or suppression_regulariser <= 0:
            raise ValueError(f"lambda_v and lambda_w must be positive, got "
                             f"{variation_regulariser} and {suppression_regulariser}")
        self.layers = tuple(layers)
        self.other_layers = tuple(layer for layer in layers if layer != FUSION_REFERENCE_LAYER)
        self.log_variation_regulariser = nn.Parameter(
            torch.tensor(math.log(variation_regulariser)))
        self.log_suppression_regulariser = nn.Parameter(
            torch.tensor(math.log(suppression_regulariser)))
        self.other_fusion_maps = nn.Parameter(
            torch.zeros(len(self.other_layers), response_size, response_size))

    @property
    def variation_regulariser(self) -> torch.Tensor:
        return self.log_variation_regulariser.exp()

    @property
    def suppression_regulariser(self) -> torch.Tensor:
        return self.log_suppression_regulariser.exp()

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Fusion maps and the two lambdas (section 3.5)."""
        return list(self.parameters())

    def fusion_maps(self) -> dict[str, torch.Tensor]:
        """Element-wise weight maps Upsilon^l ``(R, R)``, summing to one over the layers."""
        maps = dict(zip(self.other_layers, self.other_fusion_maps))
        maps[FUSION_REFERENCE_LAYER] = 1.0 - self.other_fusion_maps.sum(dim=0)
        return maps

    def transforms(self, state: AdaptationState
                   ) -> tuple[dict[str, TransformSpectrum], dict[str, TransformSpectrum]]:
        """V and W per layer from the blended statistics (eqs. 6 and 8); empty when off."""
        variation, suppression = {}, {}
        for layer, observation in state.layers.items():
            variation[layer] = transform_from_statistics(observation.variation,
                                                         self.variation_regulariser)
            suppression[layer] = transform_from_statistics(observation.suppression,
                                                           self.suppression_regulariser)
        return variation, suppression

    def fuse(self, responses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Eq. (9): sum_l Upsilon^l . S^l for responses ``(N, 1, R, R)``."""
        maps = self.fusion_maps()
        fused = None
        for layer in self.layers:
            response = responses[layer]
            if tuple(response.shape[-2:]) != tuple(maps[layer].shape):
                raise ValueError(f"{layer} response of size {tuple(response.shape[-2:])} does "
                                 f"not match the {tuple(maps[layer].shape)} fusion map")
            weighted = maps[layer].to(response.dtype) * response
            fused = weighted if fused is None else fused + weighted
        return fused


def apply_transforms(features: Features, transforms: Mapping[str, TransformSpectrum]) -> Features:
    """Circular convolution of each layer's features with its transform (eq. 2), if any."""
    return {layer: (transforms[layer].apply(value.float()).to(value.dtype)
                    if layer in transforms else value)
            for layer, value in features.items()}


def layer_responses(head: nn.Module, template: Features, search: Features) -> Features:
    """SiamFC's head (xcorr x out_scale) applied layer by layer."""
    return {layer: head(template[layer], search[layer]) for layer in template}


# ---------------------------------------------------------------------- training on clips
@dataclass(frozen=True)
class DSiamClip:
    """A batch of B training clips of T tracked frames, cropped around the ground truth.

    For step t (0-based) the transforms are learned from frame t (whose target is known) and the
    search region of frame t + 1 is scored, as in the tracking loop (section 3.6).

    ``first_targets``: ``(B, 3, 127, 127)`` exemplar crops O_1; ``targets``: ``(B, T, 3, 127, 127)``
    exemplar-sized crops O_t; ``regions``: ``(B, T, 3, 255, 255)`` search-sized crops G_t around
    the target; ``region_target_sizes``: ``(B, T, 2)`` target ``(w, h)`` in G_t's crop pixels;
    ``searches``: ``(B, T, 3, 255, 255)`` search crops Z_{t+1}. Images in the model's colour
    order, values 0-255.
    """

    first_targets: torch.Tensor
    targets: torch.Tensor
    regions: torch.Tensor
    region_target_sizes: torch.Tensor
    searches: torch.Tensor

    def __post_init__(self) -> None:
        batch, steps = self.targets.shape[:2]
        expected = {"regions": (batch, steps), "region_target_sizes": (batch, steps),
                    "searches": (batch, steps)}
        for name, leading in expected.items():
            if tuple(getattr(self, name).shape[:2]) != leading:
                raise ValueError(f"clip field '{name}' has leading shape "
                                 f"{tuple(getattr(self, name).shape[:2])}, expected {leading}")
        if self.first_targets.shape[0] != batch:
            raise ValueError(f"{self.first_targets.shape[0]} first targets for {batch} clips")

    @property
    def steps(self) -> int:
        return int(self.targets.shape[1])


def clip_responses(network: nn.Module, dynamic: DynamicSiamese, clip: DSiamClip,
                   variation_rate: float, suppression_rate: float,
                   highlight_sigma_factor: float) -> torch.Tensor:
    """Differentiable DSiam forward over clips: fused responses ``(B, T, 1, R, R)``.

    ``network`` is the SiamFC network (``backbone`` + ``head``). The crops follow the ground
    truth rather than the tracker's own estimates (the paper's 'Crop' layer follows the response
    map), and every step counts as a successful frame, so the transforms are always on.
    """
    def features(crops: torch.Tensor) -> Features:
        return alexnet_layer_features(network.backbone, crops, dynamic.layers)

    first = features(clip.first_targets)
    state = AdaptationState()
    responses = []
    for step in range(clip.steps):
        regions = clip.regions[:, step]
        highlighted = highlight_region(regions, clip.region_target_sizes[:, step],
                                       highlight_sigma_factor)
        observation = observe_frame(first, features(clip.targets[:, step]), features(regions),
                                    features(highlighted))
        state = state.updated(observation, variation_rate, suppression_rate)
        variation, suppression = dynamic.transforms(state)
        template = apply_transforms(first, variation)
        search = apply_transforms(features(clip.searches[:, step]), suppression)
        responses.append(dynamic.fuse(layer_responses(network.head, template, search)))
    return torch.stack(responses, dim=1)


def clip_loss(responses: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. (10) summed over the frames of a clip and averaged over clips.

    ``responses`` ``(B, T, 1, R, R)``; ``labels`` J ``(B, T, R, R)`` with +1 on the target and -1
    on the background: L_t = mean(log(1 + exp(-S_t . J_t))).
    """
    responses = responses.reshape(labels.shape)
    if not bool(torch.all((labels == 1) | (labels == -1))):
        raise ValueError("DSiam label maps J must hold +1 (target) and -1 (background) only")
    per_frame = F.softplus(-responses * labels).mean(dim=(-2, -1))
    return per_frame.sum(dim=1).mean()


# ---------------------------------------------------------------------- tracker
@dataclass(frozen=True)
class DSiamConfig(SiamFCConfig):
    """SiamFC's constants with DSiam's (official code) update rules.

    ``layers``: ('conv5',) for DSiam, ('conv4', 'conv5') for DSiamM. The search crop keeps the
    instance size while LOST (``lost_instance_size`` must equal ``instance_size``) because W and
    the fusion maps are learned at that size; DSiam widens the search itself on failure.
    ``highlight_sigma_factor``: width of G-bar's Gaussian relative to the target's size (the
    paper leaves it unspecified).
    """

    layers: tuple[str, ...] = ("conv5",)
    scale_lr: float = 0.58
    lost_instance_size: int = 255
    variation_regulariser: float = 1e-5
    suppression_regulariser: float = 10.0
    variation_rate: float = 0.49
    suppression_rate: float = 0.29
    min_search_ratio: float = 0.2
    max_search_ratio: float = 5.0
    failure_search_growth: float = 1.1
    highlight_sigma_factor: float = 0.5


def check_dsiam_config(config: DSiamConfig) -> None:
    if config.lost_instance_size != config.instance_size:
        raise ValueError(f"DSiam needs lost_instance_size == instance_size (its transforms and "
                         f"fusion maps are learned at {config.instance_size}), got "
                         f"{config.lost_instance_size}")
    for name in ("variation_rate", "suppression_rate"):
        if not 0.0 < getattr(config, name) <= 1.0:
            raise ValueError(f"{name} must lie in (0, 1], got {getattr(config, name)}")
    if not 0.0 < config.min_search_ratio <= 1.0 <= config.max_search_ratio:
        raise ValueError(f"search ratio bounds must satisfy 0 < min <= 1 <= max, got "
                         f"{config.min_search_ratio} and {config.max_search_ratio}")
    if config.failure_search_growth < 1.0:
        raise ValueError(f"failure_search_growth must be >= 1, got {config.failure_search_growth}")
    if config.highlight_sigma_factor <= 0:
        raise ValueError(f"highlight_sigma_factor must be positive, got "
                         f"{config.highlight_sigma_factor}")


class DSiamTracker(ExtendedSiamFCTracker):
    """SiamFC with DSiam's V / W transforms (and DSiamM's fusion) through the tracker hooks.

    The network is the SiamFC A-Net plus ``DynamicSiamese`` (fusion maps and lambdas) as its
    extension, so a trained DSiam checkpoint holds both and A-Net files load as they are.
    """

    def __init__(self, config: DSiamConfig, device="cpu", half: bool = False):
        if not isinstance(config, DSiamConfig):
            raise ValueError(f"DSiamTracker needs a DSiamConfig, got {type(config).__name__}")
        check_dsiam_config(config)
        super().__init__(config, device, half)
        self.set_adaptation(AdaptationState())
        self.search_widening = 1.0
        self.initial_search_side = 0.0

    def build_extension(self, config: DSiamConfig) -> DynamicSiamese:
        response_size = (config.instance_size - config.exemplar_size) // config.total_stride + 1
        return DynamicSiamese(config.layers, response_size, config.variation_regulariser,
                              config.suppression_regulariser)

    # ------------------------------------------------------------------ hooks
    def extract_features(self, crops: torch.Tensor) -> Features:
        return alexnet_layer_features(self.model.appearance.backbone, crops, self.config.layers)

    def on_init(self, context: InitContext) -> None:
        self.set_adaptation(AdaptationState())
        self.search_widening = 1.0
        self.initial_search_side = self.nominal_search_side()
        # The first frame's target is given: learn V_1 and W_1 from it like from any success.
        self.adapt(context.image, context.template_features)

    def search_geometry(self) -> CropGeometry:
        geometry = super().search_geometry()
        side = float(np.clip(self.nominal_search_side() * self.search_widening,
                             self.config.min_search_ratio * self.initial_search_side,
                             self.config.max_search_ratio * self.initial_search_side))
        return dataclasses.replace(geometry, side=side)

    def transform_template_features(self, features: Features) -> Features:
        return apply_transforms(features, self.variation_transforms)

    def transform_search_features(self, features: Features) -> Features:
        return apply_transforms(features, self.suppression_transforms)

    def run_head(self, template_features: Features, search_features: Features) -> torch.Tensor:
        return self.extension.fuse(layer_responses(self.model.appearance.head, template_features,
                                                   search_features))

    def on_tracked(self, result, frame: FrameContext) -> None:
        if float(frame.raw_score_map.max()) > 0.0:
            self.search_widening = 1.0
            self.adapt(frame.image, self.compute_template(frame.image, self.box))
        else:
            # Failure: switch the transforms off and look wider next frame.
            self.set_adaptation(AdaptationState())
            self.search_widening *= self.config.failure_search_growth

    # ------------------------------------------------------------------ internals
    def nominal_search_side(self) -> float:
        """s_x for the current target size at the instance size (SiamFC's rule)."""
        config = self.config
        return self.template_side(self.size) * config.instance_size / config.exemplar_size

    def set_adaptation(self, state: AdaptationState) -> None:
        """Adopt new blended statistics and solve V and W from them once (eqs. 6 and 8)."""
        self.adaptation = state
        with torch.no_grad():  # tracking never differentiates; clip_responses is for training
            self.variation_transforms, self.suppression_transforms = \
                self.extension.transforms(state)

    def adapt(self, image: torch.Tensor, target_features: Features) -> None:
        """Blend this frame's V / W statistics in, from the target at the current state."""
        config = self.config
        side = self.nominal_search_side()
        region = self.crop(image, self.center, [side], config.instance_size)
        target_in_crop = torch.as_tensor(self.size * config.instance_size / side,
                                         dtype=torch.float32).view(1, 2)
        highlighted = highlight_region(region, target_in_crop, config.highlight_sigma_factor)
        region_features = self.extract_features(torch.cat([region, highlighted]))
        observation = observe_frame(
            self.initial_template_features, target_features,
            {layer: value[:1] for layer, value in region_features.items()},
            {layer: value[1:] for layer, value in region_features.items()})
        self.set_adaptation(self.adaptation.updated(observation, config.variation_rate,
                                                    config.suppression_rate))


register_tracker("dsiam", DSiamConfig, DSiamTracker, weights_name="siamfc_alexnet",
                 config=DSiamConfig(layers=("conv5",)))
register_tracker("dsiam_m", DSiamConfig, DSiamTracker, weights_name="siamfc_alexnet",
                 config=DSiamConfig(layers=("conv4", "conv5")))
