"""pysot's adjust neck: 1x1 conv + BN per layer, template cropped to its centre."""
from __future__ import annotations

from torch import nn

# pysot crops only template-sized maps: search maps are at least this wide.
TEMPLATE_MAX_WIDTH = 20


class AdjustLayer(nn.Module):
    """Keys ``downsample.{0,1}.*``; maps narrower than 20 are centre-cropped to ``center_size``."""

    def __init__(self, in_channels: int, out_channels: int, center_size: int = 7):
        super().__init__()
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels))
        self.center_size = center_size

    def forward(self, x):
        x = self.downsample(x)
        if x.size(3) < TEMPLATE_MAX_WIDTH:
            left = (x.size(3) - self.center_size) // 2
            right = left + self.center_size
            x = x[:, :, left:right, left:right]
        return x


class AdjustAllLayer(nn.Module):
    """One ``AdjustLayer`` per input: ``downsample`` for one layer, else ``downsample{2,3,4}``."""

    def __init__(self, in_channels, out_channels, center_size: int = 7):
        super().__init__()
        if len(in_channels) != len(out_channels):
            raise ValueError('in_channels and out_channels must have the same length')
        self.names = (['downsample'] if len(in_channels) == 1 else
                      [f'downsample{i + 2}' for i in range(len(in_channels))])
        for name, c_in, c_out in zip(self.names, in_channels, out_channels):
            self.add_module(name, AdjustLayer(c_in, c_out, center_size))

    def forward(self, features):
        return [getattr(self, name)(x) for name, x in zip(self.names, features)]
