"""The CMP network: image encoder + sparse encoder + skip-layer decoder + bins->flow.

Tensor legend: B batch, H x W model-input size (any size; multiples of 8 keep
the pyramid aligned), G number of guidance sets sharing one image.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import AffinityHead, BinHead, CMPConfig
from .decoder import DecoderPartials, SkipLayerDecoder
from .encoders import ResNetEncoder, SparseEncoder

#: Per-channel RGB mean and std on the 0-255 scale (original CMP preprocessing).
IMAGE_MEAN = (123.675, 116.28, 103.53)
IMAGE_STD = (58.395, 57.12, 57.375)


class ImageFeatures(NamedTuple):
    """Everything the per-guidance pass needs from one image; computed once per image.

    parts: image-only parts of the decoder convolutions (:class:`DecoderPartials`,
           batch 1, channels at 1/2 .. 1/64 of the model input);
    size:  (H, W) of the model input.
    """

    parts: DecoderPartials
    size: tuple[int, int]

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (*self.parts.branches, self.parts.fuse4, self.parts.fuse2)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors())


def normalize_image(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float RGB in 0-255 -> normalised network input."""
    mean = rgb.new_tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = rgb.new_tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (rgb - mean) / std


class CMP(nn.Module):
    """Conditional Motion Propagation network built from a :class:`CMPConfig`."""

    #: The learned decoder has no separate stay-still decision to switch off.
    supports_scene_motion = False
    #: The dense guidance map goes through a convolutional encoder (:meth:`decode`).
    convolves_guidance = True
    #: Submodules only encode_image uses, whole (cmp.model.frozen folds their BatchNorms);
    #: the decoder's image partials are not: their BatchNorm comes after the guidance part.
    encode_only = ("image_encoder", "flow_decoder.skipconv4", "flow_decoder.skipconv2")

    def __init__(self, cfg: CMPConfig):
        super().__init__()
        self.cfg = cfg
        enc = cfg.encoder
        self.image_encoder = ResNetEncoder(enc)
        head = cfg.head
        if not isinstance(head, BinHead):
            raise ValueError(f"CMP needs a bin head, got {head.kind!r} (build it with build_cmp)")
        self.flow_encoder = SparseEncoder(head.decoder.sparse_dim)
        self.flow_decoder = SkipLayerDecoder(
            head.decoder, input_dim=enc.code_dim + head.decoder.sparse_dim,
            layer1_dim=enc.layer1_dim, stem_dim=enc.stem_width, output_dim=2 * head.num_bins)
        centers = head.bin_centers()
        self.register_buffer("bin_centers", centers, persistent=False)

    # -- split forward -----------------------------------------------------
    def encode_image(self, image: torch.Tensor) -> ImageFeatures:
        """image: (1, 3, H, W) normalised (see :func:`normalize_image`).

        Runs the image encoder, the skip convs and the image parts of the
        decoder convolutions: all the work that does not depend on guidance.
        """
        enc = self.image_encoder(image)
        skip4, skip2 = self.flow_decoder.image_skips(enc.layer1, enc.stem)
        parts = self.flow_decoder.image_partials(enc.code, skip4, skip2)
        return ImageFeatures(parts, tuple(image.shape[-2:]))

    @staticmethod
    def features_from_tensors(tensors: Sequence[torch.Tensor], size: tuple[int, int]) -> ImageFeatures:
        """:class:`ImageFeatures` from its :meth:`~ImageFeatures.tensors` and the input size
        (how :class:`cmp.model.frozen.FrozenEncoder` rebuilds them)."""
        *branches, fuse4, fuse2 = tensors
        return ImageFeatures(DecoderPartials(tuple(branches), fuse4, fuse2), tuple(size))

    def sparse_code(self, sparse: torch.Tensor) -> torch.Tensor:
        """(G, 4, H, W) guidance map -> (G, sparse_dim, H/8, W/8), always in fp32.

        The map is zero almost everywhere, so its BatchNorm statistics sit a hair
        away from the constant background; in bf16/fp16 that difference rounds
        away and the guidance is lost (a bf16-autocast run here learned to ignore
        guidance entirely). The encoder is tiny, so fp32 costs nothing.
        """
        with torch.autocast(device_type=sparse.device.type, enabled=False):
            low = sparse.dtype in (torch.float16, torch.bfloat16)
            return self.flow_encoder(sparse.float() if low else sparse)

    def decode_logits(self, feats: ImageFeatures, sparse: torch.Tensor) -> torch.Tensor:
        """sparse: (G, 4, H, W) guidance maps -> logits (G, 2*bins, H/2, W/2).

        Equals :meth:`forward` on the same image up to float round-off.
        """
        return self.flow_decoder.forward_partials(self.sparse_code(sparse), feats.parts)

    def logits_to_flow(self, logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Expected value over bins, upsampled (align_corners=True) to ``size``.

        Returns (G, 2, H, W) float32 flow in model-input pixels, channel 0 = dx.
        """
        n = self.cfg.head.num_bins
        logits = logits.float()
        c = self.bin_centers.view(1, n, 1, 1).float()
        fx = (logits[:, :n].softmax(dim=1) * c).sum(1, keepdim=True)
        fy = (logits[:, n:].softmax(dim=1) * c).sum(1, keepdim=True)
        flow = torch.cat([fx, fy], dim=1)
        return F.interpolate(flow, size=size, mode="bilinear", align_corners=True)

    # The engine-facing names shared with :class:`cmp.model.AffinityCMP`.
    def decode(self, feats: ImageFeatures, sparse: torch.Tensor) -> torch.Tensor:
        """Per-guidance output (here: bin logits) on cached image features."""
        return self.decode_logits(feats, sparse)

    def to_flow(self, out: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Output of :meth:`forward` / :meth:`decode` -> (G, 2, H, W) float32 flow at ``size``."""
        return self.logits_to_flow(out, size)

    def forward(self, image: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        """Full network in the original order (concatenate, then convolve): logits (B, 2*bins, H/2, W/2).

        image: (B, 3, H, W) normalised; sparse: (B, 4, H, W). Training and the
        uncached reference path use this; the engine uses encode_image + decode_logits.
        """
        enc = self.image_encoder(image)
        skip4, skip2 = self.flow_decoder.image_skips(enc.layer1, enc.stem)
        s = self.sparse_code(sparse)
        return self.flow_decoder(torch.cat([enc.code, s.to(enc.code.dtype)], dim=1), skip4, skip2)


def build_cmp(cfg: CMPConfig) -> nn.Module:
    """Build an (untrained, eval-mode) network from its config: :class:`CMP` or
    :class:`~cmp.model.affinity.AffinityCMP` by the kind of ``cfg.head``."""
    from .affinity import AffinityCMP
    return (AffinityCMP if isinstance(cfg.head, AffinityHead) else CMP)(cfg).eval()
