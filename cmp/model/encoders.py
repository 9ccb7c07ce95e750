"""Image encoder (ResNet, output stride 8) and sparse-motion encoder.

Module names match the original CMP state dict (see
``../shared/reference/cmp_resnet50_state_dict.tsv``) so the public weights
load unchanged. No torchvision: it does not import beside our torch wheel.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .config import EncoderConfig


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        # Stride and dilation live on the 3x3 conv (ResNet v1.5, as the original).
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ImageEncoding(NamedTuple):
    """Outputs of :class:`ResNetEncoder` for a batch of B images of size HxW.

    code:   (B, code_dim, ceil(H/8), ceil(W/8)) image code.
    stem:   (B, stem_width, ceil(H/2), ceil(W/2)) stem output before max-pool.
    layer1: (B, 4 * widths[0], ceil(H/4), ceil(W/4)).
    """

    code: torch.Tensor
    stem: torch.Tensor
    layer1: torch.Tensor


class ResNetEncoder(nn.Module):
    """ResNet with bottlenecks, dilated layer3/layer4 (output stride 8)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv2d(3, cfg.stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._inplanes = cfg.stem_width
        w, b = cfg.widths, cfg.blocks
        self.layer1 = self._make_layer(w[0], b[0], stride=1, dilation=1)
        self.layer2 = self._make_layer(w[1], b[1], stride=2, dilation=1)
        self.layer3 = self._make_layer(w[2], b[2], stride=1, dilation=2)
        self.layer4 = self._make_layer(w[3], b[3], stride=1, dilation=4)
        self.conv5 = nn.Conv2d(w[3] * 4, cfg.code_dim, 1, bias=True)

    def _make_layer(self, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self._inplanes, planes * 4, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * 4),
            )
        layers = [Bottleneck(self._inplanes, planes, stride, dilation, downsample)]
        self._inplanes = planes * 4
        layers += [Bottleneck(self._inplanes, planes, 1, dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> ImageEncoding:
        """x: (B, 3, H, W) normalised RGB (see :func:`cmp.model.network.normalize_image`)."""
        stem = self.relu(self.bn1(self.conv1(x)))
        l1 = self.layer1(self.maxpool(stem))
        code = self.conv5(self.layer4(self.layer3(self.layer2(l1))))
        return ImageEncoding(code=code, stem=stem, layer1=l1)


class SparseEncoder(nn.Module):
    """Encodes the 4-channel sparse guidance map to ``out_dim`` channels at 1/8."""

    def __init__(self, out_dim: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(4, out_dim, 5, stride=2, padding=2),
            nn.BatchNorm2d(out_dim),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(out_dim, out_dim, 3, padding=1),
            nn.BatchNorm2d(out_dim),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
        )

    def forward(self, sparse: torch.Tensor) -> torch.Tensor:
        """sparse: (B, 4, H, W) = [dx, dy, mask, mask] at model-input scale."""
        return self.features(sparse)
