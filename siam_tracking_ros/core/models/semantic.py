"""SA-Siam's semantic branch (He et al., CVPR 2018): S-Net, channel attention and fusion.

The semantic branch is a Siamese network built on a frozen ImageNet classification AlexNet
(S-Net). Its exemplar side takes the context crop z^s (the search-region-sized crop around the
target in the first frame) and cuts the target features f_s(z) from the centre of f_s(z^s); a
per-layer channel attention computed from f_s(z^s) re-weights the exemplar channels, and a 1x1
fusion conv per layer maps both sides to 128 channels before cross-correlation:

    h_s(z^s, X) = corr(g(xi . f_s(z)), g(f_s(X)))                              eq. (3)

Only the attention MLPs, the fusion convs and the response bias are trained (eq. 4); S-Net stays
frozen (section 3.3, "We do not fine-tune S-Net").
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from siam_tracking_ros.core.models.heads import xcorr_fast

# ImageNet statistics torchvision's AlexNet was trained with (RGB, values in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SEMANTIC_LAYERS = ("conv4", "conv5")
# Positions of the S-Net layers inside torchvision's ``features`` Sequential; the state dict keys
# ``features.N.weight`` / ``features.N.bias`` of an ``alexnet-owt-*.pth`` file follow them.
_CONV_INDICES = {"conv1": 0, "conv2": 3, "conv3": 6, "conv4": 8, "conv5": 10}
# The ReLU after each extracted conv: semantic features are taken rectified (the paper relies on
# their sparsity for max-pooling attention, section 3.3).
_LAYER_OUTPUT_INDICES = {"conv4": 9, "conv5": 11}


@dataclass(frozen=True)
class SemanticBranchConfig:
    """Constants of the semantic branch.

    ``layer_weights``: conv5 x 1.0 + conv4 x 0.1, the per-layer response weights of the official
    code. ``fused_channels``: 128 per layer (section 4.1). ``response_scale``: SiamFC's output scale
    0.001, so that both branches produce responses of the same magnitude at initialisation.
    ``attention_hidden``: nine hidden units of the attention MLP (section 4.1).
    """

    layer_weights: tuple[tuple[str, float], ...] = (("conv4", 0.1), ("conv5", 1.0))
    fused_channels: int = 128
    response_scale: float = 0.001
    attention_hidden: int = 9
    exemplar_size: int = 127


class SemanticAlexNet(nn.Module):
    """S-Net: torchvision's AlexNet ``features`` with SiamFC's geometry, frozen.

    The layers and their indices match torchvision's AlexNet so that ImageNet weights
    (``features.N.*``) load unchanged. Section 4.1: "a small modification is made to the stride so
    that the last layer output from S-Net has the same dimension as A-Net": conv1 uses stride 2
    and no convolution pads, which gives the paper's 24x24 (conv4) and 22x22 (conv5) maps for a
    255 crop and 8x8 / 6x6 for a 127 crop. torchvision's conv4 has 256 channels (CaffeNet's, used
    in the paper, has 384); conv5 has 256.

    Input: RGB images with values in [0, 255] (the crop convention of the siamfc-pytorch A-Net);
    the ImageNet normalisation torchvision's AlexNet expects is applied inside.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3),
            nn.ReLU(inplace=True),
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0,
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0,
                             persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "SemanticAlexNet":
        # S-Net is a fixed feature extractor in training and tracking alike (section 3.1).
        return super().train(False)

    @property
    def channels(self) -> dict[str, int]:
        return {layer: self.features[_CONV_INDICES[layer]].out_channels
                for layer in SEMANTIC_LAYERS}

    def layer_parameters(self, layers) -> list[nn.Parameter]:
        """Weights and biases of the named convs (``conv1`` ... ``conv5``), for training that
        tunes S-Net (``sa_siam_tune``)."""
        unknown = sorted(set(layers) - set(_CONV_INDICES))
        if unknown:
            raise ValueError(f"unknown S-Net layers {unknown}; known: {sorted(_CONV_INDICES)}")
        return [parameter for layer in layers
                for parameter in self.features[_CONV_INDICES[layer]].parameters()]

    def output_size(self, layer: str, input_size: int) -> int:
        """Spatial size of ``layer``'s output for a square input of side ``input_size``."""
        size = input_size
        for module in self.features[:_LAYER_OUTPUT_INDICES[layer] + 1]:
            if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
                kernel = _first(module.kernel_size)
                stride = _first(module.stride)
                size = (size - kernel) // stride + 1
        return size

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """conv4 and conv5 features (rectified) of RGB 0-255 images ``(B, 3, H, W)``."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"S-Net expects RGB images of shape (B, 3, H, W), got "
                             f"{tuple(images.shape)}")
        activations = (images - self.mean) / self.std
        outputs = {}
        last_index = max(_LAYER_OUTPUT_INDICES.values())
        for index, module in enumerate(self.features[:last_index + 1]):
            activations = module(activations)
            for layer, output_index in _LAYER_OUTPUT_INDICES.items():
                if index == output_index:
                    outputs[layer] = activations
        return outputs


def _first(value) -> int:
    return int(value[0]) if isinstance(value, tuple) else int(value)


def load_snet_weights(snet: SemanticAlexNet, path: str | Path) -> None:
    """Load torchvision's ImageNet AlexNet weights (``alexnet-owt-*.pth`` layout) into S-Net.

    ``classifier.*`` keys are ignored (S-Net uses the convolutional features only). Every
    ``features.*`` key of S-Net must be present with the right shape and no other key may appear.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"S-Net weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    snet.load_state_dict(_select_feature_weights(snet, state, path))


def _select_feature_weights(snet: SemanticAlexNet, state: dict, path: Path) -> dict:
    expected = snet.state_dict()
    unknown = sorted(key for key in state
                     if key not in expected and not key.startswith("classifier."))
    if unknown:
        raise KeyError(f"{path}: keys not in torchvision's AlexNet layout: {unknown[:5]}")
    missing = sorted(key for key in expected if key not in state)
    if missing:
        raise KeyError(f"{path}: missing S-Net feature weights {missing}")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ValueError(f"{path}: {key} has shape {tuple(state[key].shape)}, S-Net needs "
                             f"{tuple(tensor.shape)}")
    return {key: state[key] for key in expected}


def centre_crop(features: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` window of ``(B, C, H, W)`` features.

    S-Net is fully convolutional, so f_s(z) is the centre of f_s(z^s) (section 3.1).
    """
    height, width = features.shape[-2:]
    if size > min(height, width):
        raise ValueError(f"cannot cut a {size}x{size} centre from {height}x{width} features")
    top = (height - size) // 2
    left = (width - size) // 2
    return features[..., top:top + size, left:left + size]


def grid_max_pool(features: torch.Tensor, centre_size: int) -> torch.Tensor:
    """Max pooling over a 3x3 grid whose centre cell is the target (section 3.2, Fig. 3).

    For a 22x22 conv5 map and a 6x6 target the rows/columns split as 8 | 6 | 8. Returns
    ``(B, C, 9)``, the cells in row-major order.
    """
    height, width = features.shape[-2:]
    if centre_size >= min(height, width):
        raise ValueError(f"target cell {centre_size} must be smaller than the {height}x{width} map")
    rows = _grid_edges(height, centre_size)
    cols = _grid_edges(width, centre_size)
    cells = [features[..., rows[i]:rows[i + 1], cols[j]:cols[j + 1]].amax(dim=(-2, -1))
             for i in range(3) for j in range(3)]
    return torch.stack(cells, dim=-1)


def _grid_edges(length: int, centre_size: int) -> tuple[int, int, int, int]:
    start = (length - centre_size) // 2
    return 0, start, start + centre_size, length


class ChannelAttention(nn.Module):
    """Channel weights xi of one S-Net layer (section 3.2).

    Each channel's 3x3-grid max-pooled vector (9 values) goes through a two-layer MLP with nine
    ReLU hidden units shared by all channels of the layer, then a sigmoid with bias 0.5, so that
    every weight lies in [0.5, 1.5] and no channel is suppressed to zero.
    """

    def __init__(self, hidden: int = 9) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(9, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, context_features: torch.Tensor, target_size: int) -> torch.Tensor:
        """``(B, C)`` weights from the context features f_s(z^s) ``(B, C, H, W)``."""
        pooled = grid_max_pool(context_features, target_size)
        return torch.sigmoid(self.mlp(pooled).squeeze(-1)) + 0.5


@dataclass(frozen=True)
class SemanticExemplar:
    """What the semantic branch keeps of the first frame: fused, attention-weighted kernels.

    ``kernels[layer]`` is g(xi . f_s(z)) of shape ``(B, 128, k, k)``; ``attention[layer]`` is xi,
    ``(B, C)``, kept for inspection (it is computed once per sequence, section 3.2).
    """

    kernels: dict[str, torch.Tensor]
    attention: dict[str, torch.Tensor]


class SemanticBranch(nn.Module):
    """S-Net + per-layer channel attention + per-layer 1x1 fusion + response adjustment.

    Training entry point: ``forward(context_crops, search_crops)`` returns the response h_s of
    eq. (3), ``(B, 1, 17, 17)`` for 255 crops; eq. (4) minimises SiamFC's logistic loss of it
    against the label map (``train.losses.balanced_logistic_loss``) over
    ``trainable_parameters()`` only.
    """

    def __init__(self, config: SemanticBranchConfig = SemanticBranchConfig()) -> None:
        super().__init__()
        self.config = config
        self.snet = SemanticAlexNet()
        channels = self.snet.channels
        self.attention = nn.ModuleDict(
            {layer: ChannelAttention(config.attention_hidden) for layer in SEMANTIC_LAYERS})
        self.fusion = nn.ModuleDict(
            {layer: nn.Conv2d(channels[layer], config.fused_channels, kernel_size=1)
             for layer in SEMANTIC_LAYERS})
        # The semantic response's own bias (response = 0.3 (h_a + b_a) + 0.7 (h_s + b_s)).
        self.response_bias = nn.Parameter(torch.zeros(()))
        self._layer_weights = dict(config.layer_weights)
        if set(self._layer_weights) != set(SEMANTIC_LAYERS):
            raise ValueError(f"layer_weights must name exactly {SEMANTIC_LAYERS}, got "
                             f"{sorted(self._layer_weights)}")

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Attention MLPs, fusion convs and response bias: S-Net stays frozen (section 3.3)."""
        return [*self.attention.parameters(), *self.fusion.parameters(), self.response_bias]

    def exemplar_feature_size(self, layer: str) -> int:
        return self.snet.output_size(layer, self.config.exemplar_size)

    def exemplar(self, context_crops: torch.Tensor) -> SemanticExemplar:
        """Kernels g(xi . f_s(z)) from context crops z^s (RGB 0-255, ``(B, 3, 255, 255)``)."""
        context_features = self.snet(context_crops)
        kernels, attention = {}, {}
        for layer in SEMANTIC_LAYERS:
            target_size = self.exemplar_feature_size(layer)
            weights = self.attention[layer](context_features[layer], target_size)
            target_features = centre_crop(context_features[layer], target_size)
            # Attention multiplies the exemplar features only, before fusion (eq. 3).
            kernels[layer] = self.fusion[layer](target_features * weights[:, :, None, None])
            attention[layer] = weights
        return SemanticExemplar(kernels=kernels, attention=attention)

    def response(self, exemplar: SemanticExemplar, search_crops: torch.Tensor) -> torch.Tensor:
        """Semantic response map h_s + b_s for search crops X (RGB 0-255, ``(N, 3, 255, 255)``).

        ``exemplar`` holds either one kernel set (shared by all N crops, e.g. the scales of one
        frame) or one per crop.
        """
        search_features = self.snet(search_crops)
        total = None
        for layer in SEMANTIC_LAYERS:
            fused = self.fusion[layer](search_features[layer])
            layer_response = xcorr_fast(exemplar.kernels[layer], fused)
            weighted = self._layer_weights[layer] * layer_response
            total = weighted if total is None else total + weighted
        return self.config.response_scale * total + self.response_bias

    def forward(self, context_crops: torch.Tensor, search_crops: torch.Tensor) -> torch.Tensor:
        """Eq. (3) for a batch of training pairs (z^s_i, X_i): ``(B, 1, 17, 17)`` logits."""
        if context_crops.shape[0] != search_crops.shape[0]:
            raise ValueError(f"{context_crops.shape[0]} context crops for "
                             f"{search_crops.shape[0]} search crops: pairs must match")
        return self.response(self.exemplar(context_crops), search_crops)


def warn_random_snet() -> None:
    warnings.warn(
        "SA-Siam's S-Net has random weights: no ImageNet AlexNet file was given (config "
        "'snet_weights', torchvision's alexnet-owt-*.pth layout), so the semantic branch carries "
        "no semantic information", RuntimeWarning, stacklevel=3)
