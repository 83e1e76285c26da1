"""AlexNet backbones of the two reference checkpoint formats."""
from __future__ import annotations

from torch import nn


def _siamfc_batch_norm(channels: int) -> nn.BatchNorm2d:
    # siamfc-pytorch's BatchNorm uses eps 1e-6 (momentum 0.05 while training).
    return nn.BatchNorm2d(channels, eps=1e-6, momentum=0.05)


class SiamFCAlexNet(nn.Module):
    """siamfc-pytorch's AlexNetV1: keys ``conv{1..5}.*``; stride 8; 127 -> 6x6, 255 -> 22x22.

    Grouped convolutions (groups 2) in conv2, conv4 and conv5; conv5 has no BN and no ReLU.
    """
    output_stride = 8
    out_channels = 256

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 96, 11, 2), _siamfc_batch_norm(96),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.conv2 = nn.Sequential(nn.Conv2d(96, 256, 5, 1, groups=2), _siamfc_batch_norm(256),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.conv3 = nn.Sequential(nn.Conv2d(256, 384, 3, 1), _siamfc_batch_norm(384),
                                   nn.ReLU(inplace=True))
        self.conv4 = nn.Sequential(nn.Conv2d(384, 384, 3, 1, groups=2), _siamfc_batch_norm(384),
                                   nn.ReLU(inplace=True))
        self.conv5 = nn.Sequential(nn.Conv2d(384, 256, 3, 1, groups=2))

    def forward(self, x):
        for layer in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            x = layer(x)
        return x


PYSOT_ALEXNET_CHANNELS = (3, 96, 256, 384, 384, 256)


class PysotAlexNet(nn.Module):
    """pysot's AlexNetLegacy: keys ``features.N.*``; max-pool before ReLU; final BN, no ReLU.

    ``width_mult`` scales every channel count but the input's (pysot's width multiplier).
    """

    def __init__(self, width_mult: float = 1.0):
        super().__init__()
        c = [3] + [int(channels * width_mult) for channels in PYSOT_ALEXNET_CHANNELS[1:]]
        self.out_channels = c[5]
        self.features = nn.Sequential(
            nn.Conv2d(c[0], c[1], kernel_size=11, stride=2), nn.BatchNorm2d(c[1]),
            nn.MaxPool2d(kernel_size=3, stride=2), nn.ReLU(inplace=True),
            nn.Conv2d(c[1], c[2], kernel_size=5), nn.BatchNorm2d(c[2]),
            nn.MaxPool2d(kernel_size=3, stride=2), nn.ReLU(inplace=True),
            nn.Conv2d(c[2], c[3], kernel_size=3), nn.BatchNorm2d(c[3]), nn.ReLU(inplace=True),
            nn.Conv2d(c[3], c[4], kernel_size=3), nn.BatchNorm2d(c[4]), nn.ReLU(inplace=True),
            nn.Conv2d(c[4], c[5], kernel_size=3), nn.BatchNorm2d(c[5]),
        )

    def forward(self, x):
        return self.features(x)
