"""DROL online classification subnet C (DROL section 3, Figure 3).

C works on backbone features of the search crop and has three parts:
- compression module: 1x1 convolution to 64 channels, linear (the authors' code has no activation
  after it);
- dual attention module (Figure 3): one branch applies global average pooling and two FC layers
  (hidden width 32, ReLU between them) and a sigmoid, giving a weight per channel; the other
  averages over channels and applies a sigmoid, giving a weight per position. As in the authors'
  code the two reweighted maps are added: ``x * sigmoid(spatial) + x * sigmoid(channel)``;
- filter module: one 4x4 convolution kernel with a single output channel (section 4.1).
While fitting, the filter output passes through the authors' small-slope output activation
(``elu(leaky_relu(s, 1 / a), a)``, a = 0.05: negative scores saturate at -a, so the many
background cells below zero cost little); the scores used for tracking are the plain filter
output, as in the authors' code. The features enter unnormalised, as there.
Compression and attention are fitted on the first frame only and then frozen ("only fine-tuned
with the first frame ... kept fixed during tracking"); the filter keeps being optimised on the
sample memory during tracking (section 3.3, Algorithm 1).

The objective is the L2 error written as ||r(w)||^2 with r_j = sqrt(gamma_j)(f(x_j) - y_j) and
r_{m+k} = sqrt(lambda_k) w_k (section 3.3), minimised by Gauss-Newton with conjugate gradient.
Constants follow the reference implementation (see AugmentationConfig and
OnlineClassifierConfig). Where the paper text lost a detail (sections 3.1-3.2), the choice of the
ATOM-style classifier DROL's code builds on is used and marked as such.

All positions and sizes handed to the classifier are in feature-map cells, relative to the centre
of the map (the centre of the search crop); the tracker converts from pixels with the authors'
convention of instance size / H crop pixels per cell. For the fusion and the frame analysis the
H x H filter output is upsampled to one value per crop pixel (`score_maps`, the authors' Fourier
interpolation); `analyse` reads that map in its pixels, as the authors' `localize_advanced` does.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F

from siam_tracking_ros.core.online.augment import feature_dropout
from siam_tracking_ros.core.online.fusion import fourier_upsample
from siam_tracking_ros.core.online.memory import SampleMemory
from siam_tracking_ros.core.online.optim import (GaussNewtonResult, concat_residuals,
                                                  conjugate_gradient, gauss_newton)

PIPELINES = ("cmp", "cmp_att", "att_cmp")


@dataclass(frozen=True)
class OnlineClassifierConfig:
    compressed_channels: int = 64
    filter_size: int = 4
    filter_regularisation: float = 0.1
    # The paper gives no regularisation for the compression and attention weights; the ATOM-style
    # base regularises its projection (compression) layer with 1e-4, used here for both.
    compression_regularisation: float = 1e-4
    attention_regularisation: float = 1e-4
    # Table 5, G2: "cmp" = compression only, "cmp_att" = compression then attention (the paper's
    # choice), "att_cmp" = attention then compression.
    pipeline: str = "cmp_att"
    # Hidden width of the two channel-attention FC layers = channels // reduction: 64 // 2 = 32 in
    # the authors' code.
    attention_reduction: int = 2
    # Slope parameter a of the output activation elu(leaky_relu(s, 1 / a), a) used in the fit.
    response_activation_slope: float = 0.05
    memory_size: int = 250
    learning_rate: float = 0.01
    hard_negative_learning_rate: float = 0.02
    init_gn_iter: int = 6
    # Total CG iterations at initialisation, spread evenly over the Gauss-Newton steps, as the
    # ATOM-style base counts them.
    init_cg_iter: int = 60
    update_cg_iter: int = 5
    update_interval: int = 10
    hard_negative_cg_iter: int = 5
    target_not_found_threshold: float = 0.25
    distractor_threshold: float = 0.8
    hard_negative_threshold: float = 0.5
    # A second peak above distractor_threshold x peak is a hard negative when exactly one of the
    # two peaks lies beyond displacement_scale x half the map side from the centre, else the frame
    # is uncertain (left out of the memory), as in the authors' code.
    displacement_scale: float = 0.8
    # Label Gaussian sigma = factor * sqrt(first-frame target area in cells), as the authors'.
    output_sigma_factor: float = 0.25
    # Size (relative to the target) of the region around the peak that is not a distractor.
    target_neighbourhood_scale: float = 2.2
    initial_minimum_weight: float = 0.25
    seed: int = 0

    def __post_init__(self):
        if self.pipeline not in PIPELINES:
            raise ValueError(f"pipeline must be one of {PIPELINES}, got {self.pipeline!r}")
        positive = ("compressed_channels", "filter_size", "memory_size", "update_interval",
                    "attention_reduction", "output_sigma_factor", "response_activation_slope")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.init_gn_iter > 0 and self.init_cg_iter < self.init_gn_iter:
            raise ValueError(f"init_cg_iter ({self.init_cg_iter}) must be at least init_gn_iter "
                             f"({self.init_gn_iter}): it is the total over all Gauss-Newton steps")
        for name in ("learning_rate", "hard_negative_learning_rate"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")

    @property
    def uses_attention(self) -> bool:
        return self.pipeline != "cmp"


class FrameState(Enum):
    """How the online score map of a frame looks (decides the memory and filter update)."""
    NORMAL = "normal"
    NOT_FOUND = "not_found"          # peak below the target-not-found threshold
    DISTRACTOR = "distractor"        # a second peak > distractor_threshold x peak, both peaks
                                     # equally far out: uncertain, left out of the memory
    HARD_NEGATIVE = "hard_negative"  # a second peak > hard_negative_threshold x peak (or a
                                     # distractor with one peak near the centre, one far out)


@dataclass(frozen=True)
class ScoreAnalysis:
    state: FrameState
    peak_score: float
    second_peak_score: float
    peak_offset: tuple[float, float]   # (dx, dy) of the peak from pixel M // 2 of the map


def gaussian_labels(map_size: int, centre_offsets: torch.Tensor, sigma: float) -> torch.Tensor:
    """N x S x S Gaussians with peak 1 at the given (dx, dy) offsets from the map centre."""
    if sigma <= 0:
        raise ValueError(f"label sigma must be > 0, got {sigma}")
    centre = (map_size - 1) / 2.0
    grid = torch.arange(map_size, dtype=centre_offsets.dtype, device=centre_offsets.device) - centre
    dx = grid[None, None, :] - centre_offsets[:, 0, None, None]
    dy = grid[None, :, None] - centre_offsets[:, 1, None, None]
    return torch.exp(-(dx ** 2 + dy ** 2) / (2.0 * sigma ** 2))


def label_sigma(target_size_cells: tuple[float, float], config: OnlineClassifierConfig) -> float:
    """output_sigma_factor x sqrt(target area in cells), fixed from the first frame as the
    authors compute it once at initialisation."""
    return config.output_sigma_factor * math.sqrt(max(target_size_cells[0] * target_size_cells[1],
                                                      1e-6))


def label_centre_shift(kernel_size: int) -> float:
    """Half a cell for an even kernel (the authors' 0.5 * ((k + 1) % 2)): where the 'same'
    filter output of a target at the map centre peaks."""
    return 0.5 * ((kernel_size + 1) % 2)


def response_activation(scores: torch.Tensor, slope: float) -> torch.Tensor:
    """The fit's output activation ``elu(leaky_relu(s, 1 / a), a)``: identity for s >= 0, and
    ``a (exp(s / a) - 1)`` below, which saturates at -a."""
    return F.elu(F.leaky_relu(scores, 1.0 / slope), slope)


@dataclass(frozen=True)
class AttentionWeights:
    """The two bias-free FC layers of the channel branch (1x1 convolutions in the authors' code)."""
    fc1_weight: torch.Tensor   # hidden x channels
    fc2_weight: torch.Tensor   # channels x hidden

    def as_list(self) -> list[torch.Tensor]:
        return [self.fc1_weight, self.fc2_weight]


def dual_attention(features: torch.Tensor, weights: AttentionWeights) -> torch.Tensor:
    """Figure 3, combined additively as the authors' code does:
    ``x * sigmoid(mean over channels of x) + x * sigmoid(fc2(relu(fc1(GAP x))))``."""
    pooled = features.mean(dim=(2, 3))
    hidden = F.relu(F.linear(pooled, weights.fc1_weight))
    channel_weights = torch.sigmoid(F.linear(hidden, weights.fc2_weight))[:, :, None, None]
    spatial_weights = torch.sigmoid(features.mean(dim=1, keepdim=True))
    return features * spatial_weights + features * channel_weights


def compress(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Compression module: a bias-free 1x1 convolution, with no activation after it."""
    return F.conv2d(features, weight)


def apply_filter(features: torch.Tensor, filter_weight: torch.Tensor) -> torch.Tensor:
    """Filter module: B x C x H x W -> B x H x W scores, the authors' 'same' correlation: padding
    k // 2 on every side, and for an even kernel the last row and column of the H + 1 result
    dropped. Output cell i then covers features i - k // 2 .. i + k // 2 - 1, centred half a cell
    before i, which the labels' half-cell shift (`label_centre_shift`) matches.

    The same correlation as ``F.conv2d(features, filter_weight, padding=k // 2)``, computed as
    one matrix product of the k*k kernel taps with the channels at every position, whose columns
    ``F.fold`` then adds up at the positions each tap reaches. oneDNN's convolution with a single
    output channel, and above all its gradients (the filter is fitted by Gauss-Newton over up
    to 250 samples), run 5-20x slower than these matrix products.
    """
    batch, channels, height, width = features.shape
    kernel = filter_weight.shape[-1]
    padding = kernel // 2
    # fold adds column (ky, kx) at block position + (ky, kx); the correlation needs position -
    # (ky, kx), hence the flipped taps and the complementary padding.
    taps = filter_weight[0].flip(-1, -2).reshape(channels, kernel * kernel)
    # One (positions x channels) matrix: a view, without a copy, of channels_last features
    # (the sample memory keeps them so).
    rows = features.permute(0, 2, 3, 1).reshape(batch * height * width, channels)
    columns = (rows @ taps).reshape(batch, height * width, kernel * kernel).transpose(1, 2)
    output = (height + 2 * padding - kernel + 1, width + 2 * padding - kernel + 1)
    full = F.fold(columns, output, kernel_size=kernel, padding=kernel - 1 - padding)[:, 0]
    return full[:, :height, :width]


def filter_gradient(features: torch.Tensor, output_gradient: torch.Tensor,
                    kernel_size: int) -> torch.Tensor:
    """The adjoint of `apply_filter` in its filter: the gradient of
    ``sum(apply_filter(features, w) * output_gradient)`` with respect to the 1 x C x k x k `w`.
    ``F.unfold`` is the adjoint of the ``F.fold`` there, and the tap products become one
    (channels x positions) by (positions x taps) matrix product."""
    batch, channels, height, width = features.shape
    padding = kernel_size // 2
    # The rows and columns `apply_filter` drops get no gradient.
    full_size = (height + 2 * padding - kernel_size + 1, width + 2 * padding - kernel_size + 1)
    output_gradient = F.pad(output_gradient, (0, full_size[1] - width, 0, full_size[0] - height))
    columns = F.unfold(output_gradient[:, None], kernel_size, padding=kernel_size - 1 - padding)
    rows = features.permute(0, 2, 3, 1).reshape(batch * height * width, channels)
    taps = rows.t() @ columns.transpose(1, 2).reshape(batch * height * width, -1)
    return taps.reshape(channels, kernel_size, kernel_size).flip(-1, -2)[None]


def _activation_derivative(scores: torch.Tensor, slope: float) -> torch.Tensor:
    """d/ds of `response_activation`: 1 above zero, ``exp(s / a)`` at and below (the slope 1 / a
    of the leaky part times the ELU's ``a exp(s / a)``), as autograd takes it."""
    return torch.where(scores > 0, torch.ones_like(scores), torch.exp(scores / slope))


def filter_gauss_newton_step(features: torch.Tensor, labels: torch.Tensor,
                             weights: torch.Tensor, filter_weight: torch.Tensor,
                             regularisation: float, slope: float,
                             num_cg_iter: int) -> GaussNewtonResult:
    """One Gauss-Newton step of the filter problem ||r(w)||^2, r_j = sqrt(gamma_j)
    (act(f(x_j; w)) - y_j), r_{m+k} = sqrt(lambda) w_k (section 3.3), with `num_cg_iter` CG
    iterations: what `gauss_newton` does for it, with J p and J^T u written out (the filter and
    its adjoint, scaled by sqrt(gamma) act') instead of autograd's double backward, which
    builds and walks a graph over the whole memory for every product (same step within float
    rounding, about 1.5-2x faster over 250 samples)."""
    with torch.no_grad():
        kernel = filter_weight.shape[-1]
        root_weights = weights.sqrt()[:, None, None]

        def losses_at(scores, weight):
            data = root_weights * (response_activation(scores, slope) - labels)
            return data, float((data ** 2).sum() + regularisation * (weight ** 2).sum())

        scores = apply_filter(features, filter_weight)
        data_residual, loss_before = losses_at(scores, filter_weight)
        row_scale = root_weights * _activation_derivative(scores, slope)    # J = diag(.) f'(x)
        steepest = -(filter_gradient(features, row_scale * data_residual, kernel)
                     + regularisation * filter_weight)
        normal_scale = row_scale ** 2

        def normal_matrix_times(direction: list[torch.Tensor]) -> list[torch.Tensor]:
            projected = normal_scale * apply_filter(features, direction[0])
            return [filter_gradient(features, projected, kernel) + regularisation * direction[0]]

        # The authors' filter optimiser uses Polak-Ribiere directions (FLETCHER_REEVES False).
        step = conjugate_gradient(normal_matrix_times, [steepest], num_iter=num_cg_iter,
                                  beta_rule="polak_ribiere").solution
        updated = filter_weight + step[0]
        _, loss_after = losses_at(apply_filter(features, updated), updated)
    return GaussNewtonResult(params=[updated], losses=(loss_before, loss_after))


@dataclass(frozen=True)
class _ExtractorWeights:
    """Compression + attention: the target-specific feature extractor (gray area, Figure 3)."""
    compression: torch.Tensor
    attention: AttentionWeights | None

    def as_list(self) -> list[torch.Tensor]:
        return [self.compression] + ([] if self.attention is None else self.attention.as_list())

    @staticmethod
    def from_list(params: list[torch.Tensor], with_attention: bool) -> "_ExtractorWeights":
        attention = AttentionWeights(*params[1:3]) if with_attention else None
        return _ExtractorWeights(compression=params[0], attention=attention)


def _extract(features: torch.Tensor, weights: _ExtractorWeights, pipeline: str) -> torch.Tensor:
    if pipeline == "att_cmp":
        return compress(dual_attention(features, weights.attention), weights.compression)
    compressed = compress(features, weights.compression)
    return compressed if pipeline == "cmp" else dual_attention(compressed, weights.attention)


def _normal(shape: tuple[int, ...], std: float, generator: torch.Generator) -> torch.Tensor:
    """`new_zeros(shape).normal_(0, std)` as the authors draw it, from `generator`."""
    return torch.empty(shape).normal_(0.0, std, generator=generator)


def _initial_extractor(input_channels: int, config: OnlineClassifierConfig,
                       generator: torch.Generator) -> _ExtractorWeights:
    # Random normal initialisation with std 1/sqrt(fan_in) for the compression; both attention
    # layers get std 1/sqrt(channels), as in the authors' code, drawn in their order
    # (compression, first FC, second FC).
    compression = _normal((config.compressed_channels, input_channels, 1, 1),
                          1.0 / math.sqrt(input_channels), generator)
    if not config.uses_attention:
        return _ExtractorWeights(compression, None)
    channels = config.compressed_channels if config.pipeline == "cmp_att" else input_channels
    hidden = max(channels // config.attention_reduction, 1)
    std = 1.0 / math.sqrt(channels)
    fc1 = _normal((hidden, channels, 1, 1), std, generator).reshape(hidden, channels)
    fc2 = _normal((channels, hidden, 1, 1), std, generator).reshape(channels, hidden)
    return _ExtractorWeights(compression, AttentionWeights(fc1_weight=fc1, fc2_weight=fc2))


def _initial_filter(config: OnlineClassifierConfig, generator: torch.Generator) -> torch.Tensor:
    """Normal with std 1 / (number of filter weights), the authors' 'randn' filter start."""
    shape = (1, config.compressed_channels, config.filter_size, config.filter_size)
    return _normal(shape, 1.0 / math.prod(shape), generator)


def _with_autograd(method):
    """Run a method with autograd on, also when called inside `torch.inference_mode()` (the
    trackers' init/track are): the solver differentiates, and the state it keeps must be made of
    normal tensors that later autograd calls may use."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with torch.inference_mode(False), torch.enable_grad():
            return method(*args, **kwargs)
    return wrapper


class OnlineClassifier:
    """The online classification subnet C with its sample memory and update schedule."""

    def __init__(self, input_channels: int,
                 config: OnlineClassifierConfig = OnlineClassifierConfig(),
                 device: torch.device | str = "cpu"):
        if input_channels <= 0:
            raise ValueError(f"input_channels must be > 0, got {input_channels}")
        self.config = config
        self.input_channels = input_channels
        self.device = torch.device(device)
        self._extractor: _ExtractorWeights | None = None
        self._filter: torch.Tensor | None = None
        self.memory: SampleMemory | None = None
        self._frame_count = 0
        self._sigma = 1.0

    @property
    def is_initialised(self) -> bool:
        return self._filter is not None

    @property
    def attention(self) -> AttentionWeights | None:
        """The fitted channel-attention layers (None without an attention module)."""
        self._require_initialised()
        return self._extractor.attention

    @property
    def filter_weight(self) -> torch.Tensor:
        self._require_initialised()
        return self._filter

    # ----- first frame -------------------------------------------------------------------------

    @_with_autograd
    def initialise(self, features: torch.Tensor, target_offsets: torch.Tensor,
                   target_size: tuple[float, float], dropout_copies: int = 7,
                   dropout_probability: float = 0.2,
                   generator: torch.Generator | None = None) -> tuple[float, ...]:
        """Fit compression, attention and filter on the augmented first-frame samples.

        `features`: N x C x H x W backbone features of the augmented images, identity sample
        first; `target_offsets`: N x 2 offsets (dx, dy) of the target centre from the map centre,
        in cells; `target_size`: (w, h) of the target in cells, which fixes the label sigma for
        the sequence. `dropout_copies` channel-dropout copies of the identity sample are added
        (section 4.1 augmentation). The joint problem runs `init_gn_iter` Gauss-Newton steps
        sharing `init_cg_iter` CG iterations. `generator` draws the dropout masks and the initial
        weights, in the authors' order (a CPU generator seeded with `config.seed` when absent).
        Returns the loss before each Gauss-Newton step and after the last.
        """
        features = self._check_features(features)
        config = self.config
        if target_offsets.shape != (features.shape[0], 2):
            raise ValueError(f"target_offsets must be {features.shape[0]} x 2, "
                             f"got {tuple(target_offsets.shape)}")
        if config.init_gn_iter < 1:
            raise ValueError("init_gn_iter must be >= 1 to fit the first-frame model")
        if generator is None:
            generator = torch.Generator().manual_seed(config.seed)
        features = features.clone()
        offsets = target_offsets.to(device=self.device, dtype=features.dtype).clone()
        if dropout_copies > 0:
            copies = feature_dropout(features[:1], dropout_copies, dropout_probability, generator)
            features = torch.cat([features, copies])
            offsets = torch.cat([offsets, offsets[:1].expand(dropout_copies, 2)])
        self._sigma = label_sigma(target_size, config)
        labels = self._labels(offsets, self.score_size(features.shape[-1]))
        weights = torch.full((features.shape[0],), 1.0 / features.shape[0], device=self.device)
        extractor = _initial_extractor(self.input_channels, config, generator)
        start = [p.to(self.device) for p in extractor.as_list()]
        start.append(_initial_filter(config, generator).to(self.device))
        result = gauss_newton(self._joint_residual(features, labels, weights), start,
                              num_gn_iter=config.init_gn_iter,
                              num_cg_iter=config.init_cg_iter // config.init_gn_iter,
                              preconditioner=self._joint_preconditioner(start))
        self._extractor = _ExtractorWeights.from_list(result.params[:-1], config.uses_attention)
        self._filter = result.params[-1]
        with torch.no_grad():
            embedded = _extract(features, self._extractor, config.pipeline)
        self.memory = SampleMemory(config.memory_size, tuple(embedded.shape[1:]),
                                   tuple(labels.shape[1:]), self.device,
                                   initial_minimum_weight=config.initial_minimum_weight)
        self.memory.set_initial(embedded, labels)
        self._frame_count = 0
        return result.losses

    def score_maps(self, scores: torch.Tensor, out_size: int) -> torch.Tensor:
        """B x H x H filter outputs as B x out_size x out_size maps, one value per crop pixel (the
        authors' Fourier interpolation, `fusion.fourier_upsample`)."""
        return fourier_upsample(scores, out_size, self.config.filter_size)

    def score_size(self, feature_size: int) -> int:
        """Side of the filter output: the feature map's ('same' correlation)."""
        return feature_size

    def _labels(self, offsets: torch.Tensor, size: int) -> torch.Tensor:
        """Gaussian labels at (dx, dy) cell offsets from the map centre, shifted by half a cell
        for the even kernel as the authors' labels are."""
        shift = label_centre_shift(self.config.filter_size)
        return gaussian_labels(size, offsets + shift, self._sigma)

    def _joint_preconditioner(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """Diagonal CG preconditioner 1 / regularisation weight per parameter, as the authors'
        joint problem uses: the compression and attention weights, regularised 1000x less than
        the filter, take correspondingly larger steps."""
        config = self.config
        regularisation = ([config.compression_regularisation]
                          + [config.attention_regularisation] * (len(params) - 2)
                          + [config.filter_regularisation])
        return [torch.full_like(p, 1.0 / weight) for p, weight in zip(params, regularisation)]

    def _joint_residual(self, features, labels, weights):
        config = self.config

        def residual(params: list[torch.Tensor]) -> torch.Tensor:
            extractor = _ExtractorWeights.from_list(params[:-1], config.uses_attention)
            scores = apply_filter(_extract(features, extractor, config.pipeline), params[-1])
            scores = response_activation(scores, config.response_activation_slope)
            regularised = [(params[-1], config.filter_regularisation),
                           (extractor.compression, config.compression_regularisation)]
            if extractor.attention is not None:
                regularised += [(p, config.attention_regularisation)
                                for p in extractor.attention.as_list()]
            return _weighted_residual(scores, labels, weights, regularised)

        return residual

    # ----- tracking ----------------------------------------------------------------------------

    @_with_autograd
    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Target-specific features (compression + attention, frozen after the first frame)."""
        self._require_initialised()
        features = self._check_features(features)
        with torch.no_grad():
            return _extract(features, self._extractor, self.config.pipeline)

    def score_embedded(self, embedded: torch.Tensor) -> torch.Tensor:
        """f_C: B x H x W online scores of embedded features (the 'same' filter output)."""
        self._require_initialised()
        with torch.no_grad():
            return apply_filter(embedded, self._filter)

    def classify(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedded features, online scores) for B x C x H x W backbone features."""
        embedded = self.embed(features)
        return embedded, self.score_embedded(embedded)

    def analyse(self, scores: torch.Tensor, target_size: tuple[float, float]) -> ScoreAnalysis:
        """Classify a frame by its M x M online score map (`score_maps`, crop pixels): target
        absent, distractor present, hard negative present, or normal, with the thresholds and
        rules of the authors' `localize_advanced`. `target_size` (w, h) is in the map's pixels;
        offsets are measured from pixel M // 2."""
        if scores.dim() != 2:
            raise ValueError(f"scores must be an S x S map, got shape {tuple(scores.shape)}")
        config = self.config
        scores = scores.detach().float().cpu()   # one transfer; the rest runs on the host
        size = scores.shape[-1]
        peak_score, peak_index = torch.max(scores.reshape(-1), dim=0)
        peak_score = float(peak_score)
        row, col = divmod(int(peak_index), size)
        centre = float(size // 2)
        second, second_offset = _second_peak(scores, row, col, target_size,
                                             config.target_neighbourhood_scale)
        if peak_score < config.target_not_found_threshold:
            state = FrameState.NOT_FOUND
        elif second > config.distractor_threshold * peak_score:
            # One peak near the centre and one far out: the far one is a hard negative to learn
            # from; both near or both far: uncertain.
            radius = config.displacement_scale * size / 2.0
            peak_far = math.hypot(col - centre, row - centre) > radius
            second_far = math.hypot(*second_offset) > radius
            state = FrameState.HARD_NEGATIVE if peak_far != second_far else FrameState.DISTRACTOR
        elif (second > config.hard_negative_threshold * peak_score
              and second > config.target_not_found_threshold):
            state = FrameState.HARD_NEGATIVE
        else:
            state = FrameState.NORMAL
        return ScoreAnalysis(state=state, peak_score=peak_score, second_peak_score=second,
                             peak_offset=(col - centre, row - centre))

    @_with_autograd
    def update(self, embedded: torch.Tensor, analysis: ScoreAnalysis,
               target_offset: tuple[float, float]) -> bool:
        """Algorithm 1 for one frame: store the sample unless the target is absent or a distractor
        is present (section 4.1), with the learning rate doubled for hard negatives, then
        optimise the filter every `update_interval` frames or at once on a hard negative.
        `embedded` is the 1 x C x H x W target-specific feature of the frame; the label is a
        Gaussian at `target_offset` (cells from the map centre) with the first frame's sigma.
        Returns whether the filter was optimised."""
        self._require_initialised()
        config = self.config
        if analysis.state not in (FrameState.NOT_FOUND, FrameState.DISTRACTOR):
            offset = torch.tensor([target_offset], dtype=embedded.dtype, device=self.device)
            label = self._labels(offset, self.memory.labels.shape[-1])
            hard = analysis.state is FrameState.HARD_NEGATIVE
            self.memory.add(embedded.reshape(self.memory.features.shape[1:]), label[0],
                            config.hard_negative_learning_rate if hard else config.learning_rate)
        self._frame_count += 1
        if analysis.state is FrameState.HARD_NEGATIVE:
            self.optimise_filter(config.hard_negative_cg_iter)
            return True
        if self._frame_count % config.update_interval == 0:
            self.optimise_filter(config.update_cg_iter)
            return True
        return False

    @_with_autograd
    def optimise_filter(self, num_cg_iter: int) -> tuple[float, ...]:
        """One Gauss-Newton step with `num_cg_iter` CG iterations on the filter alone over the
        weighted memory, linearised at the current filter (the authors' filter optimiser, with
        its Polak-Ribiere directions); compression and attention stay frozen. Returns the loss
        before and after the step."""
        self._require_initialised()
        memory = self.memory
        step = filter_gauss_newton_step(memory.features, memory.labels, memory.weights,
                                        self._filter, self.config.filter_regularisation,
                                        self.config.response_activation_slope, num_cg_iter)
        self._filter = step.params[0]
        return step.losses

    # ----- checks ------------------------------------------------------------------------------

    def _require_initialised(self) -> None:
        if not self.is_initialised:
            raise RuntimeError("the online classifier is used before initialise() was called")

    def _check_features(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 4 or features.shape[1] != self.input_channels:
            raise ValueError(f"features must be B x {self.input_channels} x H x W, "
                             f"got {tuple(features.shape)}")
        if features.shape[-1] != features.shape[-2]:
            raise ValueError(f"feature maps must be square, got {tuple(features.shape[-2:])}")
        return features.to(device=self.device, dtype=torch.float32)


def _weighted_residual(scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                       regularised: list[tuple[torch.Tensor, float]]) -> torch.Tensor:
    """r_j = sqrt(gamma_j)(f(x_j) - y_j), r_{m+k} = sqrt(lambda_k) w_k (section 3.3)."""
    data = weights.sqrt()[:, None, None] * (scores - labels)
    return concat_residuals([data] + [math.sqrt(weight) * p for p, weight in regularised])


def _second_peak(scores: torch.Tensor, row: int, col: int, target_size: tuple[float, float],
                 neighbourhood_scale: float) -> tuple[float, tuple[float, float]]:
    """Highest score outside a window of neighbourhood_scale x target size around the peak, and
    its (dx, dy) offset from pixel M // 2 of the map."""
    size = scores.shape[-1]
    half_w = neighbourhood_scale * target_size[0] / 2.0
    half_h = neighbourhood_scale * target_size[1] / 2.0
    top, bottom = max(round(row - half_h), 0), min(round(row + half_h + 1), size)
    left, right = max(round(col - half_w), 0), min(round(col + half_w + 1), size)
    outside = scores.clone()
    # Zero, as the authors mask it (a second peak below zero decides nothing: the peak is above
    # the target-not-found threshold whenever the second one is compared).
    outside[top:bottom, left:right] = 0.0
    second, index = torch.max(outside.reshape(-1), dim=0)
    second_row, second_col = divmod(int(index), size)
    centre = float(size // 2)
    return float(second), (second_col - centre, second_row - centre)
