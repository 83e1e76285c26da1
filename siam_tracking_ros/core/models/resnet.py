"""pysot's ResNet-50 for SiamRPN++: stride 8 throughout layers 2-4 thanks to dilation.

Keys are torchvision-style (``conv1``, ``bn1``, ``layer{1..4}.N.{conv,bn}{1,2,3}``,
``layerK.0.downsample.{0,1}``). pysot's departures from torchvision, reproduced here:

* ``conv1`` has no padding (127 -> 61, 255 -> 125);
* a bottleneck's 3x3 conv uses ``padding = 2 - stride`` (none in layer2's strided first block);
* layer3 is dilated 2 and layer4 dilated 4 with stride 1; their first block, and the strided or
  dilated downsample branches, use a 3x3 conv with half the dilation.

Template 127 -> 15x15 and search 255 -> 31x31 at layers 2, 3 and 4.
"""
from __future__ import annotations

from torch import nn

LAYER_BLOCKS = (3, 4, 6, 3)
EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride/dilation) -> 1x1 residual block with pysot's padding rule."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, dilation: int = 1):
        super().__init__()
        if stride != 1 and dilation != 1:
            raise ValueError('a bottleneck is either strided or dilated, not both')
        padding = 2 - stride
        if downsample is not None and dilation > 1:
            # The first block of a dilated layer runs at half the layer's dilation.
            dilation = dilation // 2
            padding = dilation
        if dilation > 1:
            padding = dilation
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=padding,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _downsample(in_channels: int, out_channels: int, stride: int, dilation: int) -> nn.Sequential:
    if stride == 1 and dilation == 1:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, bias=False)
    else:
        half_dilation = dilation // 2 if dilation > 1 else 1
        padding = half_dilation if dilation > 1 else 0
        conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, bias=False,
                         padding=padding, dilation=half_dilation)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels))


class PysotResNet50(nn.Module):
    """Returns the outputs of ``used_layers`` (default layers 2, 3, 4) as a list."""

    def __init__(self, used_layers=(2, 3, 4)):
        super().__init__()
        unknown = set(used_layers) - {0, 1, 2, 3, 4}
        if unknown or not used_layers:
            raise ValueError(f'used_layers must be a non-empty subset of 0..4, got {used_layers}')
        self.used_layers = tuple(used_layers)
        self._in_channels = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, LAYER_BLOCKS[0])
        self.layer2 = self._make_layer(128, LAYER_BLOCKS[1], stride=2)
        deepest = max(self.used_layers)
        # pysot only builds layer3 / layer4 when they are used.
        self.layer3 = self._make_layer(256, LAYER_BLOCKS[2], dilation=2) if deepest >= 3 else None
        self.layer4 = self._make_layer(512, LAYER_BLOCKS[3], dilation=4) if deepest >= 4 else None
        self.out_channels = [(64, 256, 512, 1024, 2048)[i] for i in self.used_layers]

    def _make_layer(self, planes: int, blocks: int, stride: int = 1, dilation: int = 1):
        out_channels = planes * EXPANSION
        downsample = None
        if stride != 1 or self._in_channels != out_channels:
            downsample = _downsample(self._in_channels, out_channels, stride, dilation)
        layers = [Bottleneck(self._in_channels, planes, stride, downsample, dilation)]
        self._in_channels = out_channels
        layers += [Bottleneck(out_channels, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        stem = self.relu(self.bn1(self.conv1(x)))
        outputs = [stem]
        x = self.layer1(self.maxpool(stem))
        outputs.append(x)
        for layer in (self.layer2, self.layer3, self.layer4):
            if layer is None:
                break
            x = layer(x)
            outputs.append(x)
        return [outputs[i] for i in self.used_layers]
