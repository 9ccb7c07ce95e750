"""Typed architecture configs for CMP networks.

A config fully determines the module tree, so a checkpoint that stores its
config (our safetensors files do) can be rebuilt without guessing.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class EncoderConfig:
    """ResNet (bottleneck) image encoder at output stride 8.

    Stage widths are the bottleneck (inner) widths; each stage outputs
    ``width * 4`` channels as in torchvision's ResNet-50.
    """

    stem_width: int = 64
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    code_dim: int = 256  # conv5: 1x1 conv from 4 * widths[3] to code_dim

    @property
    def layer1_dim(self) -> int:
        return self.widths[0] * 4


@dataclass(frozen=True)
class DecoderConfig:
    """Skip-layer decoder widths (original values are the defaults)."""

    sparse_dim: int = 16      # flow_encoder output channels
    branch_dim: int = 128     # decoder1/2/4/8 conv widths
    fusion8_dim: int = 256
    skip4_dim: int = 128      # skipconv4 output
    fusion4_dim: int = 128
    skip2_dim: int = 32       # skipconv2 output
    fusion2_dim: int = 64


@dataclass(frozen=True)
class BinHead:
    """The original CMP head: a skip-layer decoder that classifies each axis of the flow
    into ``num_bins`` bins over [-fmax, fmax] px (at the model input); :class:`cmp.model.CMP`."""

    kind: str = field(default="bins", init=False)  # a field, so dataclasses.asdict (the Hub mixin) writes it
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    num_bins: int = 99
    fmax: float = 50.0

    def bin_centers(self, device=None) -> "torch.Tensor":
        """(num_bins,) float32 centres of the flow bins, in model-input pixels."""
        import torch

        step = 2 * self.fmax / self.num_bins
        return -self.fmax + step * (torch.arange(self.num_bins, device=device, dtype=torch.float32) + 0.5)


@dataclass(frozen=True)
class AffinityHead:
    """Learned-embedding propagation: each pixel blends the guidance vectors by affinity,
    with a "stay still" option; :class:`cmp.model.AffinityCMP`."""

    kind: str = field(default="affinity", init=False)
    embed_dim: int = 32
    #: 1 = the "stay still" option competes in one softmax with the guidance points;
    #: 2 = it has its own spatial decay and also sees how widely the moving points are
    #: spread (see cmp.model.affinity)
    still_prior: int = 1
    #: how sharply the segmentation walk reads this embedding: its edge weights are
    #: exp(-walk_sharpness x beta x |dE|^2) (:mod:`cmp.walk`). A property of the trained weights,
    #: as beta is; files written before it existed read the walk's first value, 4.
    walk_sharpness: float = 4.0


#: What follows the encoder: exactly one of the two kinds of network.
Head = Union[BinHead, AffinityHead]
HEADS: dict[str, type] = {h().kind: h for h in (BinHead, AffinityHead)}


@dataclass(frozen=True)
class CMPConfig:
    """Complete description of a CMP network: an image encoder and one head.

    Serialised as ``{"name", "encoder", "head": {"kind": "bins" | "affinity", ...}}``;
    a file stores only the fields its kind of head has. :meth:`from_dict` also reads
    the flat layout of earlier files (``propagation``, ``decoder``, ``num_bins``, ...).
    """

    name: str = "resnet50"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    head: Head = field(default_factory=BinHead)

    @property
    def kind(self) -> str:
        """"bins" or "affinity"."""
        return self.head.kind

    def to_dict(self) -> dict:
        head = dataclasses.asdict(self.head)
        if head.get("walk_sharpness") == AffinityHead.walk_sharpness:
            del head["walk_sharpness"]  # the default: files keep the config they had before it existed
        return {"name": self.name, "encoder": dataclasses.asdict(self.encoder), "head": head}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "CMPConfig":
        enc = EncoderConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.get("encoder", {}).items()})
        h = d.get("head")
        if h is None:  # the flat layout of files written before the head was its own type
            h = ({"kind": "affinity", "embed_dim": d.get("embed_dim", 32), "still_prior": d.get("still_prior", 1)}
                 if d.get("propagation", "decoder") == "affinity" else
                 {"kind": "bins", "decoder": d.get("decoder", {}), "num_bins": d.get("num_bins", 99),
                  "fmax": d.get("fmax", 50.0)})
        kind = h.get("kind") or ("affinity" if "embed_dim" in h else "bins" if "num_bins" in h or "decoder" in h else None)
        if kind == "bins":
            head: Head = BinHead(decoder=DecoderConfig(**h.get("decoder", {})), num_bins=int(h.get("num_bins", 99)),
                                 fmax=float(h.get("fmax", 50.0)))
        elif kind == "affinity":
            head = AffinityHead(embed_dim=int(h.get("embed_dim", 32)), still_prior=int(h.get("still_prior", 1)),
                                walk_sharpness=float(h.get("walk_sharpness", AffinityHead.walk_sharpness)))
        else:
            raise ValueError(f"unknown head kind {kind!r}; expected one of {', '.join(HEADS)}")
        return cls(name=d.get("name", "custom"), encoder=enc, head=head)

    @classmethod
    def from_json(cls, s: str) -> "CMPConfig":
        return cls.from_dict(json.loads(s))


#: The public demo model of the CMP paper (ResNet-50, 28.6 M parameters).
RESNET50 = CMPConfig()

#: The compact model we train and ship in ``checkpoints/``.
SLIM = CMPConfig(
    name="slim-resnet",
    encoder=EncoderConfig(stem_width=32, widths=(16, 32, 64, 128), blocks=(2, 2, 2, 2), code_dim=128),
    head=BinHead(decoder=DecoderConfig(sparse_dim=16, branch_dim=64, fusion8_dim=128, skip4_dim=48,
                                       fusion4_dim=64, skip2_dim=16, fusion2_dim=32)),
)

#: The shipped compact model: the slim encoder with affinity propagation.
SLIM_AFFINITY = CMPConfig(name="slim-affinity", encoder=SLIM.encoder, head=AffinityHead(embed_dim=32))

#: The same with the two-part "stay still" decision (own spatial decay, spread statistic).
SLIM_AFFINITY_2 = dataclasses.replace(SLIM_AFFINITY, name="slim-affinity-2",
                                      head=AffinityHead(embed_dim=32, still_prior=2))

#: A tiny network for fast tests.
TINY = CMPConfig(
    name="tiny",
    encoder=EncoderConfig(stem_width=8, widths=(4, 8, 8, 8), blocks=(1, 1, 1, 1), code_dim=16),
    head=BinHead(decoder=DecoderConfig(sparse_dim=8, branch_dim=8, fusion8_dim=16, skip4_dim=8,
                                       fusion4_dim=8, skip2_dim=8, fusion2_dim=8)),
)

#: The tiny encoder with affinity propagation, for fast tests.
TINY_AFFINITY = CMPConfig(name="tiny-affinity", encoder=TINY.encoder, head=AffinityHead(embed_dim=8, still_prior=2))

CONFIGS = {c.name: c for c in (RESNET50, SLIM, SLIM_AFFINITY, SLIM_AFFINITY_2, TINY, TINY_AFFINITY)}
