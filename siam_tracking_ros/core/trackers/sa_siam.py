"""SA-Siam (He et al., CVPR 2018): SiamFC's appearance branch plus a semantic branch.

The appearance branch is SiamFC itself (A-Net, eq. 1) and runs through ``SiamFCTracker``
unchanged. The semantic branch (``core.models.semantic``) builds its exemplar once, from the
first frame's context crop z^s, and scores the same search crops; the two heat maps are fused
before SiamFC's penalties, window and upsampling:

    h(z^s, X) = lambda h_a(z, X) + (1 - lambda) h_s(z^s, X),  lambda = 0.3        eq. (5)

with each branch's response carrying its own bias, as in the official code.

``ExtendedSiamFCTracker`` is shared with DSiam: a SiamFC tracker whose network is the A-Net plus
an extension module, saved together in the project format, while A-Net-only files
(``siamfc_alexnet``) still load into the A-Net part.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import nn

from siam_tracking_ros.core.checkpoints import load_state_dict_strict, read_checkpoint
from siam_tracking_ros.core.models.semantic import (SemanticBranch, SemanticExemplar,
                                                    load_snet_weights, warn_random_snet)
from siam_tracking_ros.core.models.siamese import SiamFCNet
from siam_tracking_ros.core.registry import register_tracker
from siam_tracking_ros.core.trackers.base import FrameContext, InitContext
from siam_tracking_ros.core.trackers.siamfc import SiamFCConfig, SiamFCTracker

EXTENSION_PREFIX = "extension."


class SiamFCExtensionNet(nn.Module):
    """SiamFC's network (``appearance``) and an extension's modules (``extension``).

    ``features`` and ``forward`` are SiamFC's, so the SiamFC tracking procedure runs unchanged.
    """

    def __init__(self, out_scale: float, extension: nn.Module) -> None:
        super().__init__()
        self.appearance = SiamFCNet(out_scale=out_scale)
        self.extension = extension

    def features(self, crops: torch.Tensor) -> torch.Tensor:
        return self.appearance.features(crops)

    def forward(self, template_features: torch.Tensor,
                search_features: torch.Tensor) -> torch.Tensor:
        return self.appearance(template_features, search_features)


class ExtendedSiamFCTracker(SiamFCTracker, abc.ABC):
    """A SiamFC tracker with extra trained modules that travel in the same checkpoint."""

    @abc.abstractmethod
    def build_extension(self, config: SiamFCConfig) -> nn.Module:
        """The extension's (randomly initialised) modules for ``config``."""

    def build_model(self, config: SiamFCConfig) -> SiamFCExtensionNet:
        return SiamFCExtensionNet(config.out_scale, self.build_extension(config))

    @property
    def extension(self) -> nn.Module:
        return self.model.extension

    def load_weights(self, path) -> dict:
        """Load a full project checkpoint of this tracker, or A-Net weights into the A-Net part.

        A file with ``extension.*`` keys must fit the whole network; any other file
        (siamfc-pytorch's ``siamfc_alexnet_e50.pth``, a project ``siamfc_alexnet`` file) must fit
        the A-Net exactly.
        """
        state_dict, metadata = read_checkpoint(path, self.device)
        full = any(key.startswith(EXTENSION_PREFIX) for key in state_dict)
        target = self.model if full else self.model.appearance
        load_state_dict_strict(target, state_dict, f"checkpoint '{path}'",
                               self.name if full else "SiamFC A-Net")
        self.colour_order = metadata.get("colour_order") or self.default_colour_order
        self.place_model()
        self.after_weights_loaded(full)
        return metadata

    def after_weights_loaded(self, extension_loaded: bool) -> None:
        """Called after ``load_weights``; ``extension_loaded`` tells whether the file had it."""

    def rgb(self, crops: torch.Tensor) -> torch.Tensor:
        """Crops in RGB order whatever the A-Net's colour order is."""
        return crops if self.colour_order == "RGB" else crops.flip(1)


class SASiamModules(nn.Module):
    """SA-Siam's trained parts beyond the A-Net: the semantic branch and the A-Net's bias."""

    def __init__(self) -> None:
        super().__init__()
        self.semantic = SemanticBranch()
        # siamfc-pytorch's A-Net has no response bias: 0 unless a trained SA-Siam file sets it.
        self.appearance_bias = nn.Parameter(torch.zeros(()))

    def fuse(self, appearance: torch.Tensor, semantic: torch.Tensor,
             appearance_weight: float) -> torch.Tensor:
        """Eq. (5) with each branch's bias: lambda (h_a + b_a) + (1 - lambda) (h_s + b_s).

        ``semantic`` already includes b_s (``SemanticBranch.response``).
        """
        return (appearance_weight * (appearance + self.appearance_bias)
                + (1.0 - appearance_weight) * semantic)


@dataclass(frozen=True)
class SASiamConfig(SiamFCConfig):
    """SiamFC's constants plus the branch weight lambda = 0.3 (section 4.1) and the S-Net file.

    ``snet_weights``: path of torchvision's ImageNet AlexNet (``alexnet-owt-*.pth``); without it,
    and without a full SA-Siam checkpoint, the semantic branch is random (a warning says so).
    """

    appearance_weight: float = 0.3
    snet_weights: str | None = None


class SASiamTracker(ExtendedSiamFCTracker):
    """Twofold SiamFC: A-Net through the SiamFC hooks, the semantic branch fused at
    ``modify_score_map``."""

    def __init__(self, config: SASiamConfig, device="cpu", half: bool = False):
        if not isinstance(config, SASiamConfig):
            raise ValueError(f"SASiamTracker needs an SASiamConfig, got {type(config).__name__}")
        if not 0.0 <= config.appearance_weight <= 1.0:
            raise ValueError(f"appearance_weight (lambda) must lie in [0, 1], got "
                             f"{config.appearance_weight}")
        super().__init__(config, device, half)
        self.snet_loaded = False
        self.load_configured_snet()
        self.semantic_exemplar: SemanticExemplar | None = None

    def build_extension(self, config: SASiamConfig) -> SASiamModules:
        return SASiamModules()

    @property
    def semantic(self) -> SemanticBranch:
        return self.extension.semantic

    def load_configured_snet(self) -> None:
        if self.config.snet_weights:
            load_snet_weights(self.semantic.snet, self.config.snet_weights)
            self.snet_loaded = True

    def after_weights_loaded(self, extension_loaded: bool) -> None:
        if extension_loaded:
            self.snet_loaded = True
        # An S-Net file named in the config takes precedence over the checkpoint's copy (and is
        # put back after training re-initialises the network).
        self.load_configured_snet()

    # ------------------------------------------------------------------ hooks
    def on_init(self, context: InitContext) -> None:
        if not self.snet_loaded:
            warn_random_snet()
        # z^s: the search-sized crop around the first frame's target (section 3.1); the channel
        # attention is computed from it here, once per sequence (section 3.2).
        geometry = self.search_geometry()
        context_crop = self.crop(context.image, geometry.center, [geometry.side],
                                 geometry.out_size)
        self.semantic_exemplar = self.semantic.exemplar(self.network_input(self.rgb(context_crop)))

    def modify_score_map(self, score_map: torch.Tensor, frame: FrameContext) -> torch.Tensor:
        semantic = self.semantic.response(self.semantic_exemplar,
                                          self.network_input(self.rgb(frame.crops)))
        return self.extension.fuse(score_map, semantic[:, 0].float(),
                                   self.config.appearance_weight)


register_tracker("sa_siam", SASiamConfig, SASiamTracker, weights_name="siamfc_alexnet")
