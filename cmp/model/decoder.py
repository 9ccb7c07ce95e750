"""Skip-layer motion decoder of CMP, split into an image-only part and a per-guidance part.

``skipconv4`` and ``skipconv2`` see only image features, so
:meth:`SkipLayerDecoder.image_skips` runs once per image and
:meth:`SkipLayerDecoder.forward` runs once per guidance set.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import DecoderConfig


def _cbr(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


class SkipLayerDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig, input_dim: int, layer1_dim: int, stem_dim: int,
                 output_dim: int):
        super().__init__()
        c = cfg.branch_dim
        self.decoder1 = nn.Sequential(*_cbr(input_dim, c), *_cbr(c, c), *_cbr(c, c))
        for k in (2, 4, 8):
            setattr(self, f"decoder{k}", nn.Sequential(
                nn.MaxPool2d(kernel_size=k, stride=k), *_cbr(input_dim, c), *_cbr(c, c), *_cbr(c, c)))
        self.fusion8 = nn.Sequential(*_cbr(4 * c, cfg.fusion8_dim))
        self.skipconv4 = nn.Sequential(*_cbr(layer1_dim, cfg.skip4_dim))
        self.fusion4 = nn.Sequential(*_cbr(cfg.fusion8_dim + cfg.skip4_dim, cfg.fusion4_dim))
        self.skipconv2 = nn.Sequential(*_cbr(stem_dim, cfg.skip2_dim))
        self.fusion2 = nn.Sequential(*_cbr(cfg.fusion4_dim + cfg.skip2_dim, cfg.fusion2_dim))
        self.head = nn.Conv2d(cfg.fusion2_dim, output_dim, 1)

    def image_skips(self, layer1: torch.Tensor, stem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image-only skip features: (skip4 at 1/4, skip2 at 1/2)."""
        return self.skipconv4(layer1), self.skipconv2(stem)

    def forward(self, x: torch.Tensor, skip4: torch.Tensor, skip2: torch.Tensor) -> torch.Tensor:
        """x: (B, code+sparse, h/8, w/8); skips may have batch 1 (broadcast to B).

        Returns logits (B, 2 * num_bins, h/2, w/2).
        """
        x1 = self.decoder1(x)
        x2 = _up(self.decoder2(x), x1)
        x4 = _up(self.decoder4(x), x1)
        x8 = _up(self.decoder8(x), x1)
        f8 = self.fusion8(torch.cat([x1, x2, x4, x8], dim=1))
        b = x.shape[0]
        f4 = self.fusion4(torch.cat([_up(f8, skip4), skip4.expand(b, -1, -1, -1)], dim=1))
        f2 = self.fusion2(torch.cat([_up(f4, skip2), skip2.expand(b, -1, -1, -1)], dim=1))
        return self.head(f2)
