"""SiameseTracker: the template-method base class every tracker of the project derives from.

``init`` and ``track`` are fixed sequences of hook calls (see docs/architecture.md, section
"Tracker hooks"). The Siamese bases (SiamFC, SiamRPN) implement the abstract hooks; the seed
trackers (DROL, SA-Siam, DSiam, CLNet) override the optional ones.
"""
from __future__ import annotations

import abc
import copy
import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from siam_tracking_ros.core import boxes
from siam_tracking_ros.core.crop import crop_and_resize, crop_and_resize_tensor, pad_colour
from siam_tracking_ros.core.cuda_graphs import GraphedFeatures, map_tensors
from siam_tracking_ros.core.device import (check_precision, legacy_half_precision,
                                           precision_dtype, resolve_device, resolve_precision)
from siam_tracking_ros.core.windows import padded_side


class TrackState(enum.Enum):
    """Whether the tracker believes it sees the target."""
    TRACKING = 'tracking'
    LOST = 'lost'


@dataclass(frozen=True)
class TrackResult:
    """One frame's output: 0-based ``(x, y, w, h)`` float64 box, confidence in [0, 1], state."""
    box: np.ndarray
    score: float
    state: TrackState


@dataclass(frozen=True)
class TrackerConfig:
    """Fields every Siamese tracker shares; trackers subclass this frozen dataclass.

    ``lost_threshold``: a frame whose best score is below it leaves the box where it was and puts
    the tracker in the LOST state (0 disables losing the target). ``recover_threshold``: while
    LOST, a score above it returns to TRACKING. ``lost_instance_size``: search crop side (pixels
    after resizing) while LOST; the crop keeps the template's pixel scale, so the region searched
    grows with it. ``lost_window_influence``: cosine window weight while LOST (near zero: the
    target may be anywhere in the widened region).

    ``precision``: the network's arithmetic, ``'fp32' | 'bf16' | 'fp16' | 'auto'`` (see
    ``core.device.resolve_precision``); fp32, the default, tracks exactly as the references do.
    Score maps and everything after them stay float32 in every precision, and so do the parts
    ``full_precision_modules`` names. ``channels_last``: NHWC memory layout for the network and
    its input crops on the CPU (faster convolutions). ``None``, the default, uses it only in
    reduced precision: NHWC changes the order of the float32 sums (about 1e-6 relative), which
    moved reference-weight SiamRPN boxes by up to 7e-4 px a frame and once turned a choice between
    two candidates 0.003 apart (group2_2, frame 29), so fp32 stays NCHW, as the references run.
    ``True`` / ``False`` force it either way.
    """
    exemplar_size: int = 127
    instance_size: int = 255
    context_amount: float = 0.5
    window_influence: float = 0.0
    lost_threshold: float = 0.0
    recover_threshold: float = 0.5
    lost_instance_size: int = 255
    lost_window_influence: float = 0.001
    precision: str = 'fp32'
    channels_last: bool | None = None


@dataclass(frozen=True)
class CropGeometry:
    """Where a frame's search crops were cut from.

    ``center``: crop centre ``(cx, cy)`` in 0-based pixel-centre image coordinates.
    ``side``: nominal side ``s_x`` of the search square in image pixels (scale factor 1).
    ``out_size``: side of each crop after resizing (instance size).
    ``scale_factors``: ``(S,)`` multipliers of ``side``; ``[1.0]`` for single-scale trackers.
    """
    center: np.ndarray
    side: float
    out_size: int
    scale_factors: np.ndarray = field(default_factory=lambda: np.ones(1))

    @property
    def sides(self) -> np.ndarray:
        """``(S,)`` side of each scale's square in image pixels."""
        return self.side * self.scale_factors

    def image_pixels_per_crop_pixel(self, scale_index: int = 0) -> float:
        """How many image pixels one crop pixel spans at ``scale_index``."""
        return float(self.sides[scale_index] / self.out_size)

    def crop_offset_to_image(self, offsets_xy, scale_index: int = 0) -> np.ndarray:
        """Map offsets from the crop centre, in crop pixels, to image points ``(..., 2)``."""
        offsets = np.asarray(offsets_xy, dtype=np.float64)
        return self.center + offsets * self.image_pixels_per_crop_pixel(scale_index)


@dataclass
class Localisation:
    """What ``locate`` proposes for this frame, before the LOST/TRACKING logic is applied.

    ``center``/``size``: proposed target centre (pixel-centre coordinates) and ``(w, h)``.
    ``score``: confidence in [0, 1] of the chosen position. ``details``: tracker-specific values
    (best index, scale index, penalty...) that hooks may read.
    """
    center: np.ndarray
    size: np.ndarray
    score: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class FrameContext:
    """Everything one ``track`` call computes, passed to the hooks in order.

    Fields are filled as ``track`` progresses: ``image`` the frame's uint8 ``H x W x 3`` pixels in
    the model's colour order (a view of the caller's array: a hook keeping it past the call copies
    it; ``image_to_tensor`` makes a device tensor where one is needed); ``geometry``; ``crops``
    (S, 3, out, out); ``search_features`` (after ``transform_search_features``);
    ``template_features`` (after ``transform_template_features``); ``head_output``; ``raw_score_map`` (from ``score_map``); ``score_map`` (after
    ``modify_score_map``); ``localisation``. ``extras`` is free for subclasses.
    """
    image: np.ndarray
    frame_index: int
    geometry: CropGeometry | None = None
    crops: torch.Tensor | None = None
    search_features: Any = None
    template_features: Any = None
    head_output: Any = None
    raw_score_map: torch.Tensor | None = None
    score_map: torch.Tensor | None = None
    localisation: Localisation | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class InitContext:
    """What ``init`` computed, passed to ``on_init``: the frame's uint8 pixels in the model's colour
    order (as ``FrameContext.image``), 0-based box, template."""
    image: np.ndarray
    box: np.ndarray
    template_features: Any


def validate_image(image_bgr) -> np.ndarray:
    """Check a tracker input image: ``numpy.ndarray``, ``uint8``, ``H x W x 3``, non-empty."""
    if not isinstance(image_bgr, np.ndarray):
        raise ValueError(f'image must be a numpy.ndarray, got {type(image_bgr).__name__}')
    if image_bgr.dtype != np.uint8:
        raise ValueError(f'image must be uint8 BGR, got dtype {image_bgr.dtype}')
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f'image must be H x W x 3 (BGR), got shape {image_bgr.shape}')
    if image_bgr.shape[0] == 0 or image_bgr.shape[1] == 0:
        raise ValueError(f'image must not be empty, got shape {image_bgr.shape}')
    return image_bgr


class SiameseTracker(abc.ABC):
    """Base class of all trackers: ``init(image_bgr, box)`` then ``track(image_bgr)`` per frame.

    Subclasses set ``default_colour_order`` (the colour order of their reference checkpoints) and
    implement ``build_model``, ``compute_template``, ``search_geometry``, ``run_head``,
    ``score_map`` and ``locate``.
    """

    default_colour_order: str = 'BGR'
    crop_corner_rule: str = 'pysot'
    config_class: type = TrackerConfig

    def __init__(self, config: TrackerConfig, device: str | torch.device = 'cpu',
                 half: bool = False):
        """``half=True`` is the older spelling of ``config.precision='fp16'`` (CUDA only)."""
        if not isinstance(config, self.config_class):
            raise ValueError(f'{type(self).__name__} needs a {self.config_class.__name__}, '
                             f'got {type(config).__name__}')
        check_precision(config.precision)
        self.validate_config(config)
        self.config = config
        self.device = resolve_device(device)
        self.precision = resolve_precision(
            legacy_half_precision(config.precision, half, self.device), self.device)
        self.dtype = precision_dtype(self.precision)
        self.memory_format = self.input_memory_format(config)
        self.colour_order = self.default_colour_order
        self.model: nn.Module = self.build_model(config)
        # Reduced precision on CUDA replays the backbone from CUDA graphs (core/cuda_graphs.py).
        self.graphed_features = (GraphedFeatures(lambda crops: self.model.features(crops))
                                 if self.device.type == 'cuda' and self.precision != 'fp32'
                                 else None)
        self.place_model()
        for module in self.full_precision_modules():
            module.register_forward_pre_hook(_inputs_to_parameter_dtype)
        self.template_features: Any = None
        self.initial_template_features: Any = None
        self.center = np.zeros(2)
        self.size = np.zeros(2)
        self.image_shape: tuple[int, int] | None = None
        self.pad_colour: np.ndarray | None = None
        self.state = TrackState.TRACKING
        self.frame_index = -1

    # ------------------------------------------------------------------ public API
    @property
    def is_initialised(self) -> bool:
        return self.template_features is not None

    @property
    def is_lost(self) -> bool:
        return self.state is TrackState.LOST

    @property
    def box(self) -> np.ndarray:
        """Current 0-based ``(x, y, w, h)``."""
        return boxes.center_size_to_xywh(np.concatenate([self.center, self.size]))

    def load_weights(self, path) -> dict:
        """Load a pysot, siamfc-pytorch or project checkpoint strictly into ``self.model``.

        Returns the checkpoint's metadata; the project format's colour order is adopted.
        """
        from siam_tracking_ros.core.checkpoints import load_checkpoint
        metadata = load_checkpoint(path, self.model, self.device, expected_tracker=self.name)
        self.colour_order = metadata.get('colour_order') or self.default_colour_order
        self.place_model()
        return metadata

    def uses_channels_last(self, config: TrackerConfig) -> bool:
        """NHWC on the CPU when ``config.channels_last`` says so; by default in reduced precision."""
        if self.device.type != 'cpu':
            return False
        if config.channels_last is None:
            return self.precision != 'fp32'
        return bool(config.channels_last)

    def input_memory_format(self, config: TrackerConfig) -> torch.memory_format:
        """The memory format crops enter the network in. channels_last where
        ``uses_channels_last``; NCHW when ``config.channels_last`` is False; otherwise (fp32 by
        default) the layout each crop is cut in (``crop``: NCHW; a tracker's ``crop_search`` may
        cut its search crops in the layout its reference feeds them, since oneDNN sums an NHWC
        input in another order than an NCHW one)."""
        if self.uses_channels_last(config):
            return torch.channels_last
        return torch.contiguous_format if config.channels_last is False else torch.preserve_format

    def place_model(self) -> None:
        """Put ``self.model`` on the device in eval mode, in the tracker's dtype and memory format,
        with ``full_precision_modules`` in float32. Call it again after replacing parameters."""
        self.model.to(self.device, self.dtype).eval()
        if self.memory_format is torch.channels_last:
            self.model.to(memory_format=torch.channels_last)
        for module in self.full_precision_modules():
            module.float()
        if self.graphed_features is not None:
            self.graphed_features.reset()

    def sibling(self) -> SiameseTracker:
        """Another tracker of this kind and config on the same network: its model (modules,
        parameters, buffers) and CUDA graphs are this tracker's objects, so the weights are
        loaded once; everything else (colour order, caches, target state) is a copy of this
        tracker's as it is now, and ``init`` sets the target's own. Load weights before making
        siblings: the colour order a file sets is the loading tracker's. Several targets are
        tracked by siblings (``core.multi_target``)."""
        shared = [self.model, *self.model.modules(), *self.model.parameters(),
                  *self.model.buffers()]
        if self.graphed_features is not None:
            shared.append(self.graphed_features)
        return copy.deepcopy(self, {id(item): item for item in shared})

    @property
    def name(self) -> str:
        """Registered name (set by the registry when built through it)."""
        return getattr(self, '_registered_name', type(self).__name__)

    @torch.inference_mode()
    def init(self, image_bgr: np.ndarray, box) -> None:
        """Start tracking the target in 0-based ``box`` ``(x, y, w, h)`` of ``image_bgr``."""
        image_bgr = validate_image(image_bgr)
        box = boxes.validate_xywh(box, image_bgr.shape)
        image = self.frame_pixels(image_bgr)
        self.image_shape = image_bgr.shape[:2]
        self.pad_colour = self.compute_pad_colour(image)
        center_size = boxes.xywh_to_center_size(box)
        self.center, self.size = center_size[:2].copy(), center_size[2:].copy()
        self.state = TrackState.TRACKING
        self.frame_index = 0
        self.template_features = self.compute_template(image, box)
        self.initial_template_features = self.template_features
        self.on_init(InitContext(image=image, box=box, template_features=self.template_features))

    @torch.inference_mode()
    def track(self, image_bgr: np.ndarray) -> TrackResult:
        """Locate the target in the next frame: ``prepare_frame``, the backbone on its crops
        (``extract_features``), ``finish_frame``. ``MultiTargetTracker`` runs the same stages
        with one backbone call on the crops of several targets."""
        frame = self.prepare_frame(image_bgr)
        return self.finish_frame(frame, self.extract_features(frame.crops))

    def check_frame(self, image_bgr: np.ndarray) -> np.ndarray:
        """The validated frame, or an error if ``track`` cannot take it (before ``init``, or
        another resolution than the initial frame's). Changes no state."""
        if not self.is_initialised:
            raise RuntimeError('track() called before init(): initialise with a frame and a box')
        image_bgr = validate_image(image_bgr)
        if image_bgr.shape[:2] != self.image_shape:
            raise ValueError(f'frame size {image_bgr.shape[1]}x{image_bgr.shape[0]} differs from '
                             f'the initial {self.image_shape[1]}x{self.image_shape[0]}; '
                             'call init() again after a resolution change')
        return image_bgr

    @torch.inference_mode()
    def prepare_frame(self, image_bgr: np.ndarray) -> FrameContext:
        """First stage of ``track``: check the frame, advance the frame index, cut the search
        crops (``frame.geometry``, ``frame.crops``) from the current state."""
        image_bgr = self.check_frame(image_bgr)
        self.frame_index += 1
        frame = FrameContext(image=self.frame_pixels(image_bgr), frame_index=self.frame_index)
        frame.geometry = self.search_geometry()
        frame.crops = self.crop_search(frame.image, frame.geometry)
        return frame

    @torch.inference_mode()
    def finish_frame(self, frame: FrameContext, features: Any) -> TrackResult:
        """Last stage of ``track``: from ``extract_features(frame.crops)`` to the committed
        result (feature transforms, head, score map, locate, LOST rule, ``on_tracked``)."""
        frame.search_features = self.transform_search_features(features)
        frame.template_features = self.transform_template_features(self.template_features)
        frame.head_output = self.run_head(frame.template_features, frame.search_features)
        frame.raw_score_map = self.score_map(frame.head_output, frame)
        frame.score_map = self.modify_score_map(frame.raw_score_map, frame)
        frame.localisation = self.locate(frame.score_map, frame)
        result = self.commit(frame.localisation)
        self.on_tracked(result, frame)
        return result

    # ------------------------------------------------------------------ image helpers
    def image_to_tensor(self, image_bgr: np.ndarray) -> torch.Tensor:
        """BGR uint8 ``H x W x 3`` -> ``(1, 3, H, W)`` float32 on the device, model colour order.

        Only for hooks that need the whole frame on the device: crops are cut from
        ``frame_pixels`` (``crop`` accepts this tensor too, with the same result).

        The upload is done in uint8 (a quarter of the bytes) and converted on the device.
        """
        tensor = torch.from_numpy(np.ascontiguousarray(image_bgr)).to(self.device, non_blocking=True)
        tensor = tensor.permute(2, 0, 1).unsqueeze(0).float()
        if self.colour_order == 'RGB':
            tensor = tensor.flip(1)
        return tensor

    def frame_pixels(self, image_bgr: np.ndarray) -> np.ndarray:
        """The uint8 ``H x W x 3`` frame in the model's colour order (a view, no copy): what the
        crops are cut from, as the references cut them from the uint8 image."""
        return image_bgr[..., ::-1] if self.colour_order == 'RGB' else image_bgr

    def compute_pad_colour(self, pixels: np.ndarray) -> np.ndarray:
        """The uint8 colour ``(3,)`` of everything outside the image for the whole sequence: the
        first frame's channel mean (``np.mean`` as the references take it) made uint8 as the
        reference of ``crop_corner_rule`` does (see ``core.crop.pad_colour``)."""
        return pad_colour(np.mean(pixels, axis=(0, 1)), self.crop_corner_rule)

    def crop(self, image: np.ndarray | torch.Tensor, center, sides, out_size: int) -> torch.Tensor:
        """Crop squares of ``sides`` around ``center`` resized to ``out_size``: ``(N, 3, out,
        out)`` on the device in model dtype, with the reference's uint8 values.

        ``image``: the frame's pixels (``frame_pixels``), cut with OpenCV on the CPU and with
        its fixed-point arithmetic emulated on other devices; or a frame tensor of
        ``image_to_tensor`` (emulated on its device). Both in the model's colour order.
        """
        centers = np.broadcast_to(np.asarray(center, dtype=np.float64), (len(sides), 2))
        sides = np.asarray(sides, dtype=np.float64)
        if isinstance(image, np.ndarray) and self.device.type == 'cpu':
            patches = crop_and_resize(image, centers, sides, out_size, self.pad_colour,
                                      self.crop_corner_rule)
            crops = torch.from_numpy(patches).permute(0, 3, 1, 2)
        else:
            crops = crop_and_resize_tensor(image, centers, sides, out_size, self.pad_colour,
                                           self.crop_corner_rule, device=self.device)
        return crops.to(self.device, self.dtype).contiguous()

    def crop_search(self, image: np.ndarray | torch.Tensor, geometry: CropGeometry) -> torch.Tensor:
        """The search crops of ``geometry``: ``(S, 3, out, out)`` in model dtype."""
        return self.crop(image, geometry.center, geometry.sides, geometry.out_size)

    def search_frame(self, image: np.ndarray | torch.Tensor, geometry: CropGeometry):
        """Crops and (transformed) search features of ``image`` at ``geometry``.

        For hooks that need search features outside ``track`` (e.g. at the first frame).
        """
        crops = self.crop_search(image, geometry)
        return crops, self.transform_search_features(self.extract_features(crops))

    def search_size(self) -> int:
        """Search crop side in crop pixels: ``lost_instance_size`` while LOST."""
        return self.config.lost_instance_size if self.is_lost else self.config.instance_size

    def window_influence(self) -> float:
        """Cosine window weight: ``lost_window_influence`` while LOST."""
        return self.config.lost_window_influence if self.is_lost else self.config.window_influence

    def template_side(self, size) -> float:
        """Exemplar context side ``sqrt((w + p)(h + p))``, ``p = context * (w + h)`` (unrounded)."""
        w, h = size
        return float(padded_side(float(w), float(h), self.config.context_amount))

    # ------------------------------------------------------------------ hooks
    def validate_config(self, config: TrackerConfig) -> None:
        """Raise ValueError for config values the tracker cannot run with (before building)."""
        check_common_config(config, stride=8)

    @abc.abstractmethod
    def build_model(self, config: TrackerConfig) -> nn.Module:
        """Create the (randomly initialised) network for ``config``."""

    def extract_features(self, crops: torch.Tensor) -> Any:
        """Backbone (+ neck) features of crops ``(N, 3, s, s)``; used for template and search."""
        crops = self.network_input(crops)
        if self.graphed_features is not None:
            return self.graphed_features(crops)
        return self.model.features(crops)

    def network_input(self, crops: torch.Tensor) -> torch.Tensor:
        """``crops`` in the network's dtype and memory format."""
        return crops.to(self.dtype, memory_format=self.memory_format)

    def full_precision_modules(self) -> list[nn.Module]:
        """Sub-networks of ``self.model`` kept in float32 whatever the precision: the parts where
        reduced precision costs accuracy. Their floating inputs are cast to float32. Those the
        model names (its ``full_precision_modules()``), none otherwise."""
        named = getattr(self.model, 'full_precision_modules', None)
        return list(named()) if callable(named) else []

    @abc.abstractmethod
    def compute_template(self, image: np.ndarray | torch.Tensor, box: np.ndarray) -> Any:
        """Template features of the target in 0-based ``box`` of ``image`` (as ``crop`` takes it).

        Does not change the tracker's state: callers may build a template from any frame.
        """

    def transform_template_features(self, features: Any) -> Any:
        """Applied to the stored template every frame before correlation. Identity here."""
        return features

    def transform_search_features(self, features: Any) -> Any:
        """Applied to the search features every frame before correlation. Identity here."""
        return features

    @abc.abstractmethod
    def search_geometry(self) -> CropGeometry:
        """Search crop geometry for the next frame from the current state (and LOST state)."""

    @abc.abstractmethod
    def run_head(self, template_features: Any, search_features: Any) -> Any:
        """Correlate template and search features; returns the tracker's head output."""

    @abc.abstractmethod
    def score_map(self, head_output: Any, frame: FrameContext) -> torch.Tensor:
        """Raw score map before penalties and window."""

    def modify_score_map(self, score_map: torch.Tensor, frame: FrameContext) -> torch.Tensor:
        """Change the raw score map before penalties and window (fusion point). Identity here."""
        return score_map

    @abc.abstractmethod
    def locate(self, score_map: torch.Tensor, frame: FrameContext) -> Localisation:
        """Penalties, window, peak and box decoding: the proposed target for this frame."""

    def on_init(self, context: InitContext) -> None:
        """Called at the end of ``init`` once the template is built. No-op here."""

    def on_tracked(self, result: TrackResult, frame: FrameContext) -> None:
        """Called at the end of ``track`` with the result and the frame's context. No-op here."""

    # ------------------------------------------------------------------ state update
    def commit(self, localisation: Localisation) -> TrackResult:
        """Apply the LOST/TRACKING rule to a proposal and update centre, size and state.

        Mirrors pysot's long-term tracker: below ``lost_threshold`` the box stays where it was and
        the state becomes LOST; while LOST, only a score above ``recover_threshold`` returns to
        TRACKING (scores in between move the box but keep the widened search).
        """
        score = float(localisation.score)
        if not _is_finite_proposal(localisation):
            # A network can emit NaN/inf (e.g. exp() of a diverged size regression): such a frame
            # carries no position, so the box stays where it was and the target counts as lost.
            self.state = TrackState.LOST
            return TrackResult(box=self.box, score=0.0, state=self.state)
        if score >= self.config.lost_threshold:
            self.center, self.size = self.clip_to_image(localisation.center, localisation.size)
        self.state = next_track_state(self.state, score, self.config.lost_threshold,
                                      self.config.recover_threshold)
        return TrackResult(box=self.box, score=score, state=self.state)

    def clip_to_image(self, center, size) -> tuple[np.ndarray, np.ndarray]:
        """Keep the centre inside the image and the size within [10, image side] (pysot's clip)."""
        height, width = self.image_shape
        image_extent = np.array([width, height], dtype=np.float64)
        center = np.clip(np.asarray(center, dtype=np.float64), 0.0, image_extent)
        size = np.clip(np.asarray(size, dtype=np.float64), 10.0, image_extent)
        return center, size

    def set_template_features(self, features: Any) -> None:
        """Replace the template used from the next frame on (e.g. a short-term template)."""
        self.template_features = features


def _inputs_to_parameter_dtype(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook of a full-precision module: floating inputs (also inside lists, tuples
    and dicts) take the dtype of the module's parameters."""
    parameter = next(module.parameters(), None)
    if parameter is None:
        return args
    return map_tensors(args, lambda tensor: tensor.to(parameter.dtype)
                       if tensor.is_floating_point() else tensor)


def _is_finite_proposal(localisation: Localisation) -> bool:
    return bool(np.isfinite(localisation.score) and np.all(np.isfinite(localisation.center))
                and np.all(np.isfinite(localisation.size)))


def next_track_state(state: TrackState, score: float, lost_threshold: float,
                     recover_threshold: float) -> TrackState:
    """LOST when ``score < lost_threshold``; back to TRACKING from LOST when above recover."""
    if score < lost_threshold:
        return TrackState.LOST
    if state is TrackState.LOST and score <= recover_threshold:
        return TrackState.LOST
    return TrackState.TRACKING


def check_common_config(config: TrackerConfig, stride: int) -> None:
    """ValueError for thresholds outside [0, 1] or crop sizes off the stride grid."""
    if not 0.0 <= config.lost_threshold <= config.recover_threshold <= 1.0:
        raise ValueError('need 0 <= lost_threshold <= recover_threshold <= 1, got '
                         f'{config.lost_threshold} and {config.recover_threshold}')
    for field_name in ('instance_size', 'lost_instance_size'):
        size = getattr(config, field_name)
        if size < config.exemplar_size or (size - config.exemplar_size) % stride:
            raise ValueError(f'{field_name} {size} must be at least exemplar_size '
                             f'{config.exemplar_size} and differ from it by a multiple of {stride}')
