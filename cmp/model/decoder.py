"""Skip-layer motion decoder of CMP, split into an image-only part and a per-guidance part.

``skipconv4`` and ``skipconv2`` see only image features, so they run once per
image. Beyond that, every convolution whose input is a concatenation of image
features and guidance-dependent features is linear in each part:
``conv(cat(a, b)) = conv_a(a) + conv_b(b) + bias`` (max-pooling acts per channel,
so it commutes with the concatenation). :meth:`SkipLayerDecoder.image_partials`
computes the image parts once per image; :meth:`SkipLayerDecoder.forward_partials`
adds the guidance parts per guidance set. :meth:`SkipLayerDecoder.forward` is the
plain, original-order computation; both agree to float round-off.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import DecoderConfig


class DecoderPartials(NamedTuple):
    """Image-only parts of the decoder convolutions, for one image (batch 1).

    branches: image part of the first conv of decoder1/2/4/8, at 1/8, 1/16, 1/32, 1/64
              of the model input, (1, branch_dim, ., .) each, without bias.
    fuse4:    image (skip4) part of the fusion4 conv, (1, fusion4_dim, H/4, W/4).
    fuse2:    image (skip2) part of the fusion2 conv, (1, fusion2_dim, H/2, W/2).
    """

    branches: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    fuse4: torch.Tensor
    fuse2: torch.Tensor


def _conv_part(conv: nn.Conv2d, x: torch.Tensor, start: int, stop: int, bias: bool) -> torch.Tensor:
    """``conv`` restricted to its input channels [start, stop)."""
    return F.conv2d(x, conv.weight[:, start:stop], conv.bias if bias else None,
                    conv.stride, conv.padding, conv.dilation)


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

    def _branches(self):
        return [getattr(self, f"decoder{k}") for k in (1, 2, 4, 8)]

    def image_partials(self, code: torch.Tensor, skip4: torch.Tensor, skip2: torch.Tensor) -> DecoderPartials:
        """Everything image-only the per-guidance pass needs (see the module docstring).

        code: (1, code_dim, H/8, W/8); skip4, skip2 as from :meth:`image_skips`.
        """
        cd = code.shape[1]
        branches = []
        for k, seq in zip((1, 2, 4, 8), self._branches()):
            x = code if k == 1 else seq[0](code)  # seq[0] is the max-pool of branches 2/4/8
            branches.append(_conv_part(seq[0 if k == 1 else 1], x, 0, cd, bias=False))
        c4, c2 = self.fusion4[0], self.fusion2[0]
        # In the fusion convs the upsampled decoder path comes first, the skip last.
        return DecoderPartials(
            branches=tuple(branches),
            fuse4=_conv_part(c4, skip4, c4.in_channels - skip4.shape[1], c4.in_channels, bias=False),
            fuse2=_conv_part(c2, skip2, c2.in_channels - skip2.shape[1], c2.in_channels, bias=False),
        )

    def forward_partials(self, sparse_code: torch.Tensor, parts: DecoderPartials) -> torch.Tensor:
        """Per-guidance pass on cached image partials.

        sparse_code: (G, sparse_dim, H/8, W/8) from the sparse encoder.
        Returns logits (G, 2 * num_bins, H/2, W/2), equal to :meth:`forward` on
        ``cat(code, sparse_code)`` up to float round-off.
        """
        outs = []
        for k, seq, part in zip((1, 2, 4, 8), self._branches(), parts.branches):
            first = 0 if k == 1 else 1
            conv = seq[first]
            s = sparse_code if k == 1 else seq[0](sparse_code)
            y = _conv_part(conv, s, conv.in_channels - s.shape[1], conv.in_channels, bias=True) + part
            y = seq[first + 1:](y)
            outs.append(y if k == 1 else _up(y, outs[0]))
        f8 = self.fusion8(torch.cat(outs, dim=1))
        c4 = self.fusion4[0]
        u4 = _up(f8, parts.fuse4)
        f4 = self.fusion4[1:](_conv_part(c4, u4, 0, u4.shape[1], bias=True) + parts.fuse4)
        c2 = self.fusion2[0]
        u2 = _up(f4, parts.fuse2)
        f2 = self.fusion2[1:](_conv_part(c2, u2, 0, u2.shape[1], bias=True) + parts.fuse2)
        return self.head(f2)

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
