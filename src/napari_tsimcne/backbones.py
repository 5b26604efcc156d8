"""ResNet backbones with a small-image stem.

All backbones follow the paper's CIFAR variant of ResNet: a 3x3 stride-1 first
convolution and no max-pool, so 28x28 or 32x32 images keep their spatial
detail.  They are built from torchvision's own ``BasicBlock``; ``"resnet18"``
is torchvision's ResNet-18 layer for layer (see ``tests/test_backbones.py``).

Names are ``"resnet{depth}"`` or ``"resnet{depth}-w{width}"``:

* depth 10, 18 or 34 sets the number of basic blocks per stage,
  ``(1, 1, 1, 1)``, ``(2, 2, 2, 2)`` or ``(3, 4, 6, 3)``;
* width (default 64) is the number of channels of the first stage; the four
  stages have ``width * (1, 2, 4, 8)`` channels, so the feature dimension of
  ``H`` is ``8 * width`` (512 for the paper's ResNet-18).

Narrow backbones such as ``"resnet10-w32"`` train many times faster on a CPU;
``benchmarks/RESULTS.md`` records the measured speed and quality of each.
"""

from __future__ import annotations

import re

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1

__all__ = ["BLOCKS_PER_STAGE", "ResNetBackbone", "make_backbone", "parse_backbone_name"]

#: Number of basic blocks in each of the four stages, by depth.
BLOCKS_PER_STAGE = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}

_NAME_PATTERN = re.compile(r"^resnet(?P<depth>\d+)(?:-w(?P<width>\d+))?$")

#: Smallest image side the backbones accept: below this the crops used by the
#: augmentations hold only a handful of pixels and the last stage sees 1x1 maps.
MIN_IMAGE_SIZE = 8


class ResNetBackbone(nn.Module):
    """ResNet feature extractor mapping ``(N, C, H, W)`` images to ``(N, D)`` features.

    Parameters
    ----------
    in_channels
        Number of image channels ``C`` (1 for grayscale, 3 for RGB, any other
        count for multi-channel microscopy).
    blocks
        Basic blocks in each of the four stages.
    width
        Channels of the first stage; ``out_features = 8 * width``.
    """

    def __init__(self, in_channels: int, blocks=(2, 2, 2, 2), width: int = 64):
        super().__init__()
        self.in_channels = in_channels
        self.out_features = 8 * width
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages = []
        inplanes = width
        for stage_index, n_blocks in enumerate(blocks):
            planes = width * 2**stage_index
            stride = 1 if stage_index == 0 else 2
            stages.append(_make_stage(inplanes, planes, n_blocks, stride))
            inplanes = planes
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)


def _make_stage(inplanes: int, planes: int, n_blocks: int, stride: int) -> nn.Sequential:
    """One ResNet stage, exactly as torchvision's ``ResNet._make_layer`` builds it."""
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
    blocks = [BasicBlock(inplanes, planes, stride, downsample)]
    blocks += [BasicBlock(planes, planes) for _ in range(n_blocks - 1)]
    return nn.Sequential(*blocks)


def parse_backbone_name(name: str) -> tuple[int, int]:
    """Return ``(depth, width)`` for a name such as ``"resnet18"`` or ``"resnet10-w32"``."""
    match = _NAME_PATTERN.match(str(name).strip().lower())
    depth = int(match["depth"]) if match else None
    if match is None or depth not in BLOCKS_PER_STAGE:
        raise ValueError(
            f"Unknown backbone {name!r}. Use 'resnet10', 'resnet18' or 'resnet34', "
            "optionally with a width suffix such as 'resnet18-w32' (first-stage channels)."
        )
    width = int(match["width"]) if match["width"] else 64
    if not 4 <= width <= 256:
        raise ValueError(f"Backbone width must be between 4 and 256, got {width} in {name!r}.")
    return depth, width


def make_backbone(name: str, in_channels: int) -> ResNetBackbone:
    """Build the backbone called ``name`` for images with ``in_channels`` channels."""
    depth, width = parse_backbone_name(name)
    return ResNetBackbone(in_channels, BLOCKS_PER_STAGE[depth], width)
