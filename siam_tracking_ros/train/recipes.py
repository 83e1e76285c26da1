"""Training recipes: what one tracker trains, on which pairs, with which loss.

A recipe plugs into the generic loop (``train.loop``) through four things:

* ``crop`` / ``augment`` / ``sampling``: how pairs are cut and augmented (the tracker's context
  rule and corner rounding, SiamFC- or SiamRPN++-style augmentation, negative pairs);
* ``targets(crops, pair, rng)``: per-pair training targets, computed in the loader workers;
* ``prepare(tracker)``: which parameters train (the rest frozen, BN of frozen parts kept in
  eval mode) and any extra modules to train;
* ``loss(tracker, batch)``: the scalar loss and its named parts for the log.

Recipes that need more than a crop pair per item override ``select_tracks`` (which tracks they
can use), ``make_item`` (what one item holds: DSiam's clips), ``load_init`` (how ``--init`` fits
their network) and ``training_state`` / ``load_training_state`` (modules that exist only for
training, such as a classification head, kept beside the checkpoint for ``--resume``).

``one_sequence_per_batch`` makes every pair of a batch come from one sequence (CLNet, §3.4).
Trackers register their recipe with :func:`register_recipe`; the SA-Siam, DSiam and CLNet
recipes live beside their trackers' training code and register on import.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from siam_tracking_ros.core.anchors import anchor_grid, score_map_size
from siam_tracking_ros.train.augment import AugmentConfig, CropConfig, CropPair, make_crop_pair
from siam_tracking_ros.train.checkpointing import load_initial_weights
from siam_tracking_ros.train.losses import (AnchorTargetConfig, assign_anchor_targets,
                                            balanced_logistic_loss, rpn_classification_loss,
                                            rpn_regression_loss, siamfc_labels)
from siam_tracking_ros.train.pairs import FramePair, ImageCache, PairSamplingConfig
from siam_tracking_ros.train.sources import Track


def batch_to_model_input(images: torch.Tensor, colour_order: str, device: torch.device,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(B, H, W, 3)`` BGR uint8 crops -> ``(B, 3, H, W)`` 0-255 floats in the model's order."""
    tensor = images.to(device, non_blocking=True).permute(0, 3, 1, 2).to(dtype)
    if colour_order == 'RGB':
        tensor = tensor.flip(1)
    return tensor.contiguous()


def set_trainable(module: nn.Module, trainable: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(trainable)


def freeze_batch_norm(module: nn.Module) -> None:
    """Keep frozen BN layers on their running statistics while the rest trains."""
    for child in module.modules():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and \
                not any(p.requires_grad for p in child.parameters()):
            child.eval()


@dataclass(frozen=True)
class RecipeConfig:
    """Optimiser defaults a recipe suggests (the command line may override them)."""

    lr: float = 0.01
    final_lr_ratio: float = 0.01
    weight_decay: float = 5e-4
    momentum: float = 0.9
    optimizer: str = 'sgd'
    schedule: str = 'exponential'
    warmup_fraction: float = 0.05
    grad_clip: float = 10.0


class TrainingRecipe(abc.ABC):
    """Base class of the per-tracker training rules (see module docstring)."""

    one_sequence_per_batch: bool = False
    # Parameter-name prefixes of modules trained on top of a base network (absent from --init).
    new_prefixes: tuple[str, ...] = ()
    # Whether training needs --init (add-on modules on a frozen base).
    needs_init: bool = False
    # Initialise convs He-normal (fan-out) instead of each layer's default when from scratch.
    he_normal_convs: bool = False

    def __init__(self, tracker_name: str, crop: CropConfig, augment: AugmentConfig,
                 sampling: PairSamplingConfig, optimiser: RecipeConfig):
        self.tracker_name = tracker_name
        self.crop = crop
        self.augment = augment
        self.sampling = sampling
        self.optimiser = optimiser

    def describe(self) -> dict:
        """Settings recorded in checkpoint metadata."""
        return {'recipe': type(self).__name__, 'crop': asdict(self.crop),
                'augment': asdict(self.augment), 'sampling': asdict(self.sampling),
                'optimiser': asdict(self.optimiser)}

    def targets(self, crops: CropPair, pair: FramePair,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Training targets of one pair (runs in the loader workers); none by default."""
        return {}

    def select_tracks(self, tracks: list[Track]) -> list[Track]:
        """The tracks this recipe trains on (all of them unless it needs something particular)."""
        return tracks

    def make_item(self, pair: FramePair, cache: ImageCache,
                  rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """One training item: the augmented crop pair and its targets (in the loader workers)."""
        crops = make_crop_pair(cache.read(pair.template.path), pair.template.box,
                               cache.read(pair.search.path), pair.search.box, pair.negative,
                               self.crop, self.augment, rng)
        sample = {
            'template': torch.from_numpy(np.ascontiguousarray(crops.template)),
            'search': torch.from_numpy(np.ascontiguousarray(crops.search)),
        }
        for name, value in self.targets(crops, pair, rng).items():
            sample[name] = torch.as_tensor(value)
        return sample

    def load_init(self, tracker, path) -> dict:
        """Load ``--init`` weights into the freshly initialised network; returns their metadata.

        Strict, except that parameters under ``new_prefixes`` may be absent from the file.
        """
        return load_initial_weights(tracker.model, path, self.new_prefixes)

    def after_checkpoint(self, checkpoint: Path) -> None:
        """Called after each epoch's checkpoint is written (extra exports beside it)."""

    def training_state(self) -> dict:
        """State of training-only modules, saved beside the checkpoint for ``--resume``."""
        return {}

    def load_training_state(self, state: dict) -> None:
        """Restore what :meth:`training_state` returned."""

    def prepare(self, tracker) -> list[nn.Parameter]:
        """Put the model in training mode and return the parameters to optimise."""
        tracker.model.train()
        set_trainable(tracker.model, True)
        return [p for p in tracker.model.parameters() if p.requires_grad]

    @abc.abstractmethod
    def loss(self, tracker, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor,
                                                                     dict[str, float]]:
        """Loss of one batch (already on the device) and its named parts."""

    def model_inputs(self, tracker, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return (batch_to_model_input(batch['template'], tracker.colour_order, tracker.device),
                batch_to_model_input(batch['search'], tracker.colour_order, tracker.device))


def load_extended_init(tracker, path) -> dict:
    """``--init`` for trackers built on SiamFC with extra modules (SA-Siam, DSiam): a full file of
    the tracker, or SiamFC A-Net weights into the A-Net part (``ExtendedSiamFCTracker``'s own
    loading rule)."""
    return tracker.load_weights(path)


# --------------------------------------------------------------------------- SiamFC
SIAMFC_STRIDE = 8
# SiamFC labels a response cell positive within 16 px of the target (radius / total stride).
SIAMFC_POSITIVE_RADIUS = 16.0


class SiamFCRecipe(TrainingRecipe):
    """SiamFC: balanced logistic loss on the 17x17 response of 127 / 255 crops."""

    he_normal_convs = True  # siamfc-pytorch's initialisation

    def __init__(self, tracker_name: str, crop: CropConfig | None = None,
                 augment: AugmentConfig | None = None,
                 sampling: PairSamplingConfig | None = None,
                 optimiser: RecipeConfig | None = None):
        super().__init__(
            tracker_name, crop or CropConfig(corner_rule='siamfc'),
            # Shifts stay inside the response so that the label disc is always on the map.
            augment or AugmentConfig(search_shift=32.0, search_scale=0.1, flip_probability=0.5),
            sampling or PairSamplingConfig(),
            # siamfc-pytorch: SGD, lr 1e-2 decayed exponentially to 1e-5, weight decay 5e-4.
            optimiser or RecipeConfig(lr=0.01, final_lr_ratio=0.001, weight_decay=5e-4))
        self.response_size = (self.crop.instance_size - self.crop.exemplar_size) // \
            SIAMFC_STRIDE + 1

    def targets(self, crops, pair, rng):
        centre = (self.crop.instance_size - 1) / 2.0
        offset = crops.search_box[:2] - centre
        labels = siamfc_labels(self.response_size, SIAMFC_STRIDE, offset[None],
                               SIAMFC_POSITIVE_RADIUS)[0]
        return {'labels': labels}

    def loss(self, tracker, batch):
        template, search = self.model_inputs(tracker, batch)
        model = tracker.model
        responses = model(model.features(template), model.features(search))
        loss = balanced_logistic_loss(responses, batch['labels'].to(tracker.device))
        return loss, {'cls': float(loss.detach())}


# --------------------------------------------------------------------------- SiamRPN
RPN_LOC_WEIGHT = 1.2  # pysot's LOC_WEIGHT (and CLNet's lambda, eq. 8)


class SiamRPNRecipe(TrainingRecipe):
    """SiamRPN++: anchor targets, 2-class cross-entropy + smooth-L1 (weight 1.2)."""

    def __init__(self, tracker_name: str, crop: CropConfig | None = None,
                 augment: AugmentConfig | None = None,
                 sampling: PairSamplingConfig | None = None,
                 optimiser: RecipeConfig | None = None,
                 anchors: AnchorTargetConfig = AnchorTargetConfig(), base_size: int = 0):
        super().__init__(
            tracker_name, crop or CropConfig(corner_rule='pysot'),
            augment or AugmentConfig(),
            # pysot draws 20 % negative pairs (a different object in the search region).
            sampling or PairSamplingConfig(negative_pair_probability=0.2),
            # pysot: SGD momentum 0.9, weight decay 1e-4, warm-up then log-decay of the lr.
            optimiser or RecipeConfig(lr=0.01, final_lr_ratio=0.05, weight_decay=1e-4))
        self.anchor_config = anchors
        score_size = score_map_size(self.crop.instance_size, self.crop.exemplar_size,
                                    SIAMFC_STRIDE, base_size)
        centre = (self.crop.instance_size - 1) / 2.0
        grid = anchor_grid(score_size).reshape(-1, 4).copy()
        grid[:, :2] += centre  # crop-centre-relative -> search-crop pixels
        self.anchors = grid

    def targets(self, crops, pair, rng):
        assigned = assign_anchor_targets(self.anchors, crops.search_box, rng, self.anchor_config)
        return {'labels': assigned.labels, 'deltas': assigned.deltas,
                'loc_weights': assigned.loc_weights}

    def rpn_loss(self, cls, loc, batch, device) -> tuple[torch.Tensor, dict[str, float]]:
        cls_loss = rpn_classification_loss(cls.float(), batch['labels'].to(device))
        loc_loss = rpn_regression_loss(loc.float(), batch['deltas'].to(device),
                                       batch['loc_weights'].to(device))
        loss = cls_loss + RPN_LOC_WEIGHT * loc_loss  # eq. (8) of CLNet, pysot's weighting
        return loss, {'cls': float(cls_loss.detach()), 'loc': float(loc_loss.detach())}

    def loss(self, tracker, batch):
        template, search = self.model_inputs(tracker, batch)
        model = tracker.model
        cls, loc = model(model.features(template), model.features(search))
        return self.rpn_loss(cls, loc, batch, tracker.device)


# --------------------------------------------------------------------------- registry
_RECIPES: dict[str, Callable[[str], TrainingRecipe]] = {}


def register_recipe(tracker_name: str, factory: Callable[[str], TrainingRecipe]) -> None:
    if tracker_name in _RECIPES:
        raise ValueError(f"a training recipe for '{tracker_name}' is already registered")
    _RECIPES[tracker_name] = factory


def trainable_trackers() -> list[str]:
    _import_recipes()
    return sorted(_RECIPES)


def recipe_for(tracker_name: str) -> TrainingRecipe:
    _import_recipes()
    if tracker_name not in _RECIPES:
        raise ValueError(f"no training recipe for tracker '{tracker_name}'; trainable: "
                         f"{', '.join(sorted(_RECIPES))}")
    return _RECIPES[tracker_name](tracker_name)


def _import_recipes() -> None:
    """Recipes defined in other modules register when those modules are imported."""
    import siam_tracking_ros.train.clnet_recipe  # noqa: F401
    import siam_tracking_ros.train.dsiam_recipe  # noqa: F401
    import siam_tracking_ros.train.sa_siam_recipe  # noqa: F401


register_recipe('siamfc_alexnet', SiamFCRecipe)
register_recipe('siamrpn_alexnet', SiamRPNRecipe)
register_recipe('siamrpn_r50_l234', lambda name: SiamRPNRecipe(name, base_size=8))
