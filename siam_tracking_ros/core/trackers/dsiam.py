"""DSiam / DSiamM (Guo et al., ICCV 2017): SiamFC with online transforms learned in closed form.

Each frame DSiam correlates a transformed template with transformed search features:

    S_t^l = corr(V_{t-1}^l * f^l(O_1), W_{t-1}^l * f^l(Z_t))                    eq. (2)

V (target appearance variation, eqs. 5-6) regresses the first template's features f(O_1) onto
those of the latest target f(O_{t-1}); W (background suppression, eqs. 7-8) regresses the
features of the region G around the latest target onto those of its weighted copy G-bar. Both
are solved in the Fourier domain (``core.fourier``). DSiamM fuses the conv4 (relu4) and conv5
responses with element-wise weight maps that sum to one (eq. 9).

What the authors' code (``run_DSiam.m``, ``CirConv.m``, ``get_simafcnet.m``, ``fcnet_init.m``)
computes, and this module follows:

- each transform is a layer ``(1 - rate) * f + rate * T * (hann . f)`` with rate 0.49 (V) and
  0.29 (W), lambda_v = 1e-5 and lambda_w = 10 (SiamFC features), the features Hann-windowed
  before every FFT and lambda scaled by the number of cells (``core.fourier.TransformLayer``);
- T is solved afresh from the latest successful frame alone (the paper: the learned transform
  is not stored, so errors do not accumulate);
- V learns from f(O_1) (first frame, never updated) to the template crop at the new position,
  cut with the target size the frame started with; W learns from the search-sized crop at the
  new position, at the side of the chosen scale, to that crop times the whole crop's
  hamming x hann window (the reference's Gaussian factor has sigma = 100 x the exemplar size,
  i.e. it is flat);
- the transforms are off until the first successful frame (none is learned at initialisation);
  a frame succeeds when the penalised, upsampled peak of the (fused) response is > 0. The
  reference's response includes the learned bias of its SiamFC network's 'adjust' layer
  (0.001 x xcorr + b, fitted in SiamFC's training with its balanced logistic loss), so its test
  is "the network calls the peak a target". siamfc-pytorch's head (this package's base) has no
  bias, so ``DSiamConfig.response_bias`` (``DynamicSiamese.response_bias``) supplies it: fitted
  for the shipped SiamFC file the way the reference's was, by SiamFC's balanced logistic loss on
  SiamFC training pairs (``train.dsiam_recipe.fit_response_bias``). It enters the success test
  only: localisation stays the base's, so with both transforms off DSiam is SiamFC exactly;
- on failure the transforms are switched off, the box keeps its size and the search side grows
  x1.1; the first success after a failure resets the search side from the target size, again
  without a size update; the search side is clamped to 0.2x-5x its initial value;
- a box whose bottom-right corner leaves the image counts as a failure, and the second time
  that happens (counted over the sequence) the box moves to the image centre;
- DSiamM: ``S = Y . S^5 + (1 - Y) . S^4`` with one learned map Y (the reference's ``Sum_w``).

Where the reference differs from its own comment: ``scaleLR`` is 0.58 with the note "0.58 for
vgg19; 0.59 for siamfc"; these are SiamFC features, so the base's 0.59 is kept (with it, DSiam
with both transforms off is SiamFC exactly). The reference's 0.98 shrink of tall targets'
template crops (``optpars.m``) is not applied: it would change the base's template.

Trainable parts (section 3.5): ``DynamicSiamese`` holds the fusion maps and the two lambdas (and
the fixed response bias);
``clip_responses`` is its differentiable forward over a short clip and ``clip_loss`` the logistic
loss of eq. (10).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from siam_tracking_ros.core import boxes, windows
from siam_tracking_ros.core.fourier import Regulariser, TransformLayer, learn_transform_layer
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
LayerTransforms = dict[str, TransformLayer]


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
@functools.lru_cache(maxsize=8)
def highlight_weight_map(size: int, sigma: float, device: torch.device = torch.device("cpu"),
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The map that turns G into G-bar (eq. 7): ``(size, size)``, maximum 1.

    The reference's saliency window: hamming (rows) x hann (columns) over the whole crop, times a
    centred Gaussian of width ``sigma`` pixels, divided by its maximum. Cached: read-only.
    """
    if size < 1 or sigma <= 0:
        raise ValueError(f"weight map needs a positive size and sigma, got {size} and {sigma}")
    with torch.inference_mode(False):  # a normal tensor: training reuses the cache
        offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
        gaussian = torch.exp(-0.5 * (offsets[:, None] ** 2 + offsets[None, :] ** 2) / sigma ** 2)
        windows = torch.outer(torch.hamming_window(size, periodic=False, dtype=torch.float64),
                              torch.hann_window(size, periodic=False, dtype=torch.float64))
        weights = windows * gaussian
        return (weights / weights.max()).to(device, dtype)


def learn_layer_transforms(sources: Features, targets: Features, regulariser: Regulariser,
                           rate: float) -> LayerTransforms:
    """One transform layer per feature layer regressing ``sources`` onto ``targets``; none
    (the transform switched off) when ``rate`` is 0."""
    if rate == 0.0:
        return {}
    return {layer: learn_transform_layer(sources[layer], targets[layer], regulariser, rate)
            for layer in sources}


def apply_transforms(features: Features, transforms: Mapping[str, TransformLayer]) -> Features:
    """Each layer's features through its transform layer (eq. 2), unchanged where it has none."""
    return {layer: transforms[layer].apply(value) if layer in transforms else value
            for layer, value in features.items()}


def layer_responses(head: nn.Module, template: Features, search: Features) -> Features:
    """SiamFC's head (xcorr x out_scale) applied layer by layer."""
    return {layer: head(template[layer], search[layer]) for layer in template}


class DynamicSiamese(nn.Module):
    """DSiam's learnable parameters: lambda_v, lambda_w (eqs. 5, 7), fusion maps (eq. 9) and the
    response bias.

    The lambdas are stored as logarithms so that gradient descent keeps them positive. The fusion
    maps are stored for every layer but conv5, whose map is one minus their sum: the maps sum to
    one by construction (eq. 9), and at initialisation conv5's map is all ones and the others all
    zeros (section 3.6). The bias is the one of the reference network's 'adjust' layer
    (0.001 x xcorr + b), which its success test (score > 0) reads; siamfc-pytorch's head has none,
    so it starts at ``response_bias`` (see ``DSiamConfig``).
    """

    def __init__(self, layers: tuple[str, ...], response_size: int,
                 variation_regulariser: float, suppression_regulariser: float,
                 response_bias: float = 0.0) -> None:
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
        self.response_bias = nn.Parameter(torch.tensor(float(response_bias)))

    @property
    def variation_regulariser(self) -> torch.Tensor:
        return self.log_variation_regulariser.exp()

    @property
    def suppression_regulariser(self) -> torch.Tensor:
        return self.log_suppression_regulariser.exp()

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Fusion maps and the two lambdas (section 3.5). The response bias is not among them:
        it is the SiamFC network's, fitted with SiamFC's own loss (``fit_response_bias``), and
        eq. (10)'s unweighted loss would move it to another calibration of the success test."""
        return [self.log_variation_regulariser, self.log_suppression_regulariser,
                self.other_fusion_maps]

    def fusion_maps(self) -> dict[str, torch.Tensor]:
        """Element-wise weight maps Upsilon^l ``(R, R)``, summing to one over the layers."""
        maps = dict(zip(self.other_layers, self.other_fusion_maps))
        maps[FUSION_REFERENCE_LAYER] = 1.0 - self.other_fusion_maps.sum(dim=0)
        return maps

    def fuse(self, responses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Eq. (9): sum_l Upsilon^l . S^l for responses ``(N, 1, R, R)``, in float32. A single
        layer (DSiam) keeps its response: its map is all ones. The response bias is not added
        here (the tracker's localisation is its base's); ``biased`` adds it.
        """
        if len(self.layers) == 1:
            return responses[FUSION_REFERENCE_LAYER].float()
        maps = self.fusion_maps()
        fused = None
        for layer in self.layers:
            response = responses[layer].float()
            if tuple(response.shape[-2:]) != tuple(maps[layer].shape):
                raise ValueError(f"{layer} response of size {tuple(response.shape[-2:])} does "
                                 f"not match the {tuple(maps[layer].shape)} fusion map")
            weighted = maps[layer].float() * response
            fused = weighted if fused is None else fused + weighted
        return fused

    def biased(self, response: torch.Tensor) -> torch.Tensor:
        """The response as the reference network scores it: plus its adjust layer's bias."""
        return response + self.response_bias.float()


def highlighted_pair(regions: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(2N, 3, s, s)``: the region crops G then G-bar = G times the highlight map (eq. 7)."""
    weights = highlight_weight_map(int(regions.shape[-1]), float(sigma), regions.device,
                                   regions.dtype)
    return torch.cat([regions, regions * weights])


# ---------------------------------------------------------------------- training on clips
@dataclass(frozen=True)
class DSiamClip:
    """A batch of B training clips, cropped around the ground truth as the tracker crops.

    Step t (0-based) scores the search region of frame t + 1 (centred on frame t's target). At
    step 0 the transforms are off, as before the first success in tracking; from step 1 on they
    are learned from frame t, whose target is known (section 3.6).

    ``first_targets``: ``(B, 3, 127, 127)`` exemplar crops O_1; ``searches``:
    ``(B, T, 3, 255, 255)`` search crops Z_{t+1}; ``targets``: ``(B, T - 1, 3, 127, 127)``
    exemplar-sized crops O_t of frames 1..T-1; ``regions``: ``(B, T - 1, 3, 255, 255)``
    search-sized crops G_t of the same frames. Images in the model's colour order, 0-255.
    """

    first_targets: torch.Tensor
    searches: torch.Tensor
    targets: torch.Tensor
    regions: torch.Tensor

    def __post_init__(self) -> None:
        batch, steps = self.searches.shape[:2]
        if steps < 1:
            raise ValueError("a DSiam clip needs at least one search frame")
        for name in ("targets", "regions"):
            leading = tuple(getattr(self, name).shape[:2])
            if leading != (batch, steps - 1):
                raise ValueError(f"clip field '{name}' has leading shape {leading}, expected "
                                 f"{(batch, steps - 1)}")
        if self.first_targets.shape[0] != batch:
            raise ValueError(f"{self.first_targets.shape[0]} first targets for {batch} clips")

    @property
    def steps(self) -> int:
        return int(self.searches.shape[1])


def clip_responses(network: nn.Module, dynamic: DynamicSiamese, clip: DSiamClip,
                   variation_rate: float, suppression_rate: float,
                   highlight_sigma: float) -> torch.Tensor:
    """Differentiable DSiam forward over clips: fused responses ``(B, T, 1, R, R)``.

    ``network`` is the SiamFC network (``backbone`` + ``head``). The crops follow the ground
    truth rather than the tracker's own estimates (the paper's 'Crop' layer follows the response
    map), and every frame after the first counts as a success.
    """
    def features(crops: torch.Tensor) -> Features:
        return alexnet_layer_features(network.backbone, crops, dynamic.layers)

    first = features(clip.first_targets)
    variation: LayerTransforms = {}
    suppression: LayerTransforms = {}
    responses = []
    for step in range(clip.steps):
        if step > 0:
            latest = features(clip.targets[:, step - 1])
            pair = features(highlighted_pair(clip.regions[:, step - 1], highlight_sigma))
            batch = clip.regions.shape[0]
            variation = learn_layer_transforms(first, latest, dynamic.variation_regulariser,
                                               variation_rate)
            suppression = learn_layer_transforms(
                {layer: value[:batch] for layer, value in pair.items()},
                {layer: value[batch:] for layer, value in pair.items()},
                dynamic.suppression_regulariser, suppression_rate)
        template = apply_transforms(first, variation)
        search = apply_transforms(features(clip.searches[:, step]), suppression)
        responses.append(dynamic.biased(dynamic.fuse(layer_responses(network.head, template,
                                                                     search))))
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
    """SiamFC's constants with DSiam's (official code) transform layers and update rules.

    ``layers``: ('conv5',) for DSiam, ('conv4', 'conv5') for DSiamM. ``variation_rate`` /
    ``suppression_rate``: the mixing weights of the V / W layers; 0 switches a transform off,
    and with both off nothing of DSiam's online update runs (SiamFC exactly, see
    ``DSiamTracker.adapts``). ``highlight_sigma_factor``: the Gaussian factor of G-bar's weight
    map has sigma = factor x exemplar size (the reference's 100: flat). ``exits_before_recentre``:
    how many frames with the box leaving the image move it to the image centre (0: never). The
    search crop keeps the instance size while LOST (``lost_instance_size`` must equal
    ``instance_size``) because W and the fusion maps are learned at that size.
    ``response_bias``: the bias the success test adds to the response (the reference network's,
    which siamfc-pytorch's head lacks); another SiamFC weights file needs its own fit.
    """

    layers: tuple[str, ...] = ("conv5",)
    lost_instance_size: int = 255
    # The reference network's adjust-layer bias for the shipped siamfc_alexnet.pth: fitted by
    # ``python -m siam_tracking_ros.train.dsiam_recipe --data TRAIN --pairs 1024 --seed 0``
    # (TRAIN: ../shared/train/sequences without Animal1, Yacht2, Couple, Woman, Skiing,
    # KiteSurf); SiamFC's balanced logistic loss 0.477 -> 0.337 with it.
    response_bias: float = -1.5547
    variation_regulariser: float = 1e-5
    suppression_regulariser: float = 10.0
    variation_rate: float = 0.49
    suppression_rate: float = 0.29
    min_search_ratio: float = 0.2
    max_search_ratio: float = 5.0
    failure_search_growth: float = 1.1
    highlight_sigma_factor: float = 100.0
    exits_before_recentre: int = 2


def check_dsiam_config(config: DSiamConfig) -> None:
    if config.lost_instance_size != config.instance_size:
        raise ValueError(f"DSiam needs lost_instance_size == instance_size (its transforms and "
                         f"fusion maps are learned at {config.instance_size}), got "
                         f"{config.lost_instance_size}")
    for name in ("variation_rate", "suppression_rate"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1] (0: transform off), got "
                             f"{getattr(config, name)}")
    if not 0.0 < config.min_search_ratio <= 1.0 <= config.max_search_ratio:
        raise ValueError(f"search ratio bounds must satisfy 0 < min <= 1 <= max, got "
                         f"{config.min_search_ratio} and {config.max_search_ratio}")
    if config.failure_search_growth < 1.0:
        raise ValueError(f"failure_search_growth must be >= 1, got {config.failure_search_growth}")
    if config.highlight_sigma_factor <= 0:
        raise ValueError(f"highlight_sigma_factor must be positive, got "
                         f"{config.highlight_sigma_factor}")
    if config.exits_before_recentre < 0:
        raise ValueError(f"exits_before_recentre must be >= 0, got "
                         f"{config.exits_before_recentre}")


@dataclass(frozen=True)
class FrameOutcome:
    """DSiam's verdict on one frame, decided in ``locate`` and acted on in ``on_tracked``.

    ``success``: penalised upsampled peak > 0. ``exited``: the box's bottom-right corner left the
    image; ``recentred``: and the box was moved to the image centre for it. ``start_size``: the
    target size the frame started with (V's template crop uses it). ``scale_index``: the chosen
    scale.
    """

    success: bool
    exited: bool
    recentred: bool
    start_size: np.ndarray
    scale_index: int


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
        self.variation: LayerTransforms = {}
        self.suppression: LayerTransforms = {}
        self.search_side = 0.0
        self.search_side_bounds = (0.0, math.inf)
        self.failed = False
        self.exits = 0
        self.last_upsampled: torch.Tensor | None = None
        self.scale_penalties = windows.siamfc_scale_penalties(config.scale_num,
                                                              config.scale_penalty)

    def build_extension(self, config: DSiamConfig) -> DynamicSiamese:
        response_size = (config.instance_size - config.exemplar_size) // config.total_stride + 1
        return DynamicSiamese(config.layers, response_size, config.variation_regulariser,
                              config.suppression_regulariser, config.response_bias)

    def full_precision_modules(self) -> list[nn.Module]:
        # Lambdas and fusion maps: the Fourier solve and the fusion run in float32.
        return [self.model.extension]

    @property
    def adapts(self) -> bool:
        """Whether DSiam's online update runs: at least one transform on."""
        return self.config.variation_rate > 0.0 or self.config.suppression_rate > 0.0

    # ------------------------------------------------------------------ hooks
    def extract_features(self, crops: torch.Tensor) -> Features:
        return alexnet_layer_features(self.model.appearance.backbone, self.network_input(crops),
                                      self.config.layers)

    def on_init(self, context: InitContext) -> None:
        # Before tracking the transforms are empty (section 3.6); the first success learns them.
        self.switch_transforms_off()
        self.failed = False
        self.exits = 0
        self.search_side = self.nominal_search_side()
        self.search_side_bounds = (self.config.min_search_ratio * self.search_side,
                                   self.config.max_search_ratio * self.search_side)

    def search_geometry(self) -> CropGeometry:
        geometry = super().search_geometry()
        if not self.adapts:
            return geometry
        return dataclasses.replace(geometry, side=self.search_side)

    def transform_template_features(self, features: Features) -> Features:
        return apply_transforms(features, self.variation)

    def transform_search_features(self, features: Features) -> Features:
        return apply_transforms(features, self.suppression)

    def run_head(self, template_features: Features, search_features: Features) -> torch.Tensor:
        return self.extension.fuse(layer_responses(self.model.appearance.head, template_features,
                                                   search_features))

    def upsample(self, score_map: torch.Tensor) -> torch.Tensor:
        # Kept for the success test, which reads the same upsampled maps SiamFC locates on.
        self.last_upsampled = super().upsample(score_map)
        return self.last_upsampled

    def locate(self, score_map: torch.Tensor, frame: FrameContext):
        start_size = self.size.copy()
        localisation = super().locate(score_map, frame)
        if not self.adapts:
            return localisation
        # max over scales of penalty x upsampled map, as the reference network scores it
        peaks = self.extension.biased(self.last_upsampled.flatten(1).amax(1).float())
        success = float((self.scale_penalties * peaks.cpu().numpy()).max()) > 0.0
        if not success or self.failed:
            localisation.size = start_size
        exited = self.leaves_image(localisation.center, localisation.size)
        recentred = exited and 0 < self.config.exits_before_recentre <= self.exits + 1
        if recentred:
            height, width = self.image_shape
            localisation.center = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
        frame.extras["dsiam"] = FrameOutcome(success=success, exited=exited, recentred=recentred,
                                             start_size=start_size,
                                             scale_index=localisation.details["best_index"][0])
        return localisation

    def on_tracked(self, result, frame: FrameContext) -> None:
        if not self.adapts:
            return
        outcome: FrameOutcome = frame.extras["dsiam"]
        if outcome.success:
            if not outcome.exited:  # (an exit switches them off again at once)
                self.learn_transforms(frame, outcome)
            if self.failed:
                self.search_side = self.nominal_search_side()
                self.failed = False
            else:
                self.search_side = self.clamped_side(
                    self.search_side * self.scale_change(outcome.scale_index))
        else:
            self.failed = True
            self.search_side = self.clamped_side(
                self.search_side * self.config.failure_search_growth)
            self.switch_transforms_off()
        if outcome.exited:
            self.exits = 0 if outcome.recentred else self.exits + 1
            self.failed = True
            self.switch_transforms_off()

    # ------------------------------------------------------------------ internals
    def nominal_search_side(self) -> float:
        """s_x for the current target size at the instance size (SiamFC's rule)."""
        config = self.config
        return self.template_side(self.size) * config.instance_size / config.exemplar_size

    def clamped_side(self, side: float) -> float:
        low, high = self.search_side_bounds
        return float(np.clip(side, low, high))

    def scale_change(self, scale_index: int) -> float:
        """The damped scale factor SiamFC applies for the chosen scale."""
        lr = self.config.scale_lr
        return float((1.0 - lr) + lr * self.scale_factors[scale_index])

    def leaves_image(self, center: np.ndarray, size: np.ndarray) -> bool:
        """The reference's test: the box's bottom-right corner beyond the image on either side.

        The reference's 1-based ``x + w > W`` (and ``< 0``), in 0-based ``xywh``.
        """
        height, width = self.image_shape
        box = boxes.center_size_to_xywh(np.concatenate([center, size]))
        corner = box[:2] + box[2:]
        return bool(np.any(corner < -1.0) or corner[0] > width - 1 or corner[1] > height - 1)

    def switch_transforms_off(self) -> None:
        self.variation, self.suppression = {}, {}

    def learn_transforms(self, frame: FrameContext, outcome: FrameOutcome) -> None:
        """V and W afresh from this frame at the new position (eqs. 6 and 8, reference form)."""
        config = self.config
        if config.variation_rate > 0.0:
            template = self.crop(frame.image, self.center,
                                 [self.template_side(outcome.start_size)], config.exemplar_size)
            self.variation = learn_layer_transforms(
                self.initial_template_features, self.extract_features(template),
                self.extension.variation_regulariser, config.variation_rate)
        if config.suppression_rate > 0.0:
            side = frame.geometry.sides[outcome.scale_index]
            region = self.crop(frame.image, self.center, [side], config.instance_size)
            pair = self.extract_features(highlighted_pair(
                region, config.highlight_sigma_factor * config.exemplar_size))
            self.suppression = learn_layer_transforms(
                {layer: value[:1] for layer, value in pair.items()},
                {layer: value[1:] for layer, value in pair.items()},
                self.extension.suppression_regulariser, config.suppression_rate)


register_tracker("dsiam", DSiamConfig, DSiamTracker, weights_name="siamfc_alexnet",
                 config=DSiamConfig(layers=("conv5",)))
register_tracker("dsiam_m", DSiamConfig, DSiamTracker, weights_name="siamfc_alexnet",
                 config=DSiamConfig(layers=("conv4", "conv5")))
