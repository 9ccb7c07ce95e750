"""An independent functional CMP forward pass, written from CMP.md alone.

It reads weights straight from a state dict (original names, no ``module.``
prefix) and uses only ``torch.nn.functional``, so it shares no code with
``cmp.model``. Tests compare our network against it; if both were written
from the same misreading they would agree, so the layer facts are restated
here independently (strides, dilations, pooling, concat order).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
BLOCKS = (3, 4, 6, 3)
# (stride, dilation) of the 3x3 conv in each stage: output stride 8.
STAGES = ((1, 1), (2, 1), (1, 2), (1, 4))
FMAX, BINS = 50.0, 99


def _bn(sd, name, x):
    return F.batch_norm(x, sd[f"{name}.running_mean"], sd[f"{name}.running_var"],
                        sd[f"{name}.weight"], sd[f"{name}.bias"], training=False, eps=1e-5)


def _conv(sd, name, x, stride=1, padding=0, dilation=1):
    return F.conv2d(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"), stride=stride,
                    padding=padding, dilation=dilation)


def _bottleneck(sd, p, x, stride, dilation):
    out = F.relu(_bn(sd, f"{p}.bn1", _conv(sd, f"{p}.conv1", x)))
    out = F.relu(_bn(sd, f"{p}.bn2", _conv(sd, f"{p}.conv2", out, stride, dilation, dilation)))
    out = _bn(sd, f"{p}.bn3", _conv(sd, f"{p}.conv3", out))
    if f"{p}.downsample.0.weight" in sd:
        x = _bn(sd, f"{p}.downsample.1", _conv(sd, f"{p}.downsample.0", x, stride))
    return F.relu(out + x)


def image_encoder(sd, img):
    """Normalised image -> (code 1/8, stem 1/2 before max-pool, layer1 1/4)."""
    e = "image_encoder"
    stem = F.relu(_bn(sd, f"{e}.bn1", _conv(sd, f"{e}.conv1", img, 2, 3)))
    x = F.max_pool2d(stem, 3, 2, 1)
    layer1 = None
    for i, (n, (s, d)) in enumerate(zip(BLOCKS, STAGES), start=1):
        for b in range(n):
            x = _bottleneck(sd, f"{e}.layer{i}.{b}", x, s if b == 0 else 1, d)
        if i == 1:
            layer1 = x
    code = _conv(sd, f"{e}.conv5", x)
    return code, stem, layer1


def flow_encoder(sd, sparse):
    f = "flow_encoder.features"
    x = F.relu(_bn(sd, f"{f}.1", _conv(sd, f"{f}.0", sparse, 2, 2)))
    x = F.max_pool2d(x, 2)
    x = F.relu(_bn(sd, f"{f}.5", _conv(sd, f"{f}.4", x, 1, 1)))
    return F.avg_pool2d(x, 2)


def _cbr(sd, name, x, first=0):
    """[conv3x3 pad1 -> BN -> ReLU] with conv at index ``first`` of a Sequential."""
    return F.relu(_bn(sd, f"{name}.{first + 1}", _conv(sd, f"{name}.{first}", x, 1, 1)))


def _up(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def decoder(sd, x, layer1, stem):
    d = "flow_decoder"
    size8 = x.shape[-2:]
    outs = []
    for k in (1, 2, 4, 8):
        y = x if k == 1 else F.max_pool2d(x, k, k)
        off = 0 if k == 1 else 1  # the pooling occupies index 0 of branches 2/4/8
        for j in range(3):
            y = _cbr(sd, f"{d}.decoder{k}", y, off + 3 * j)
        outs.append(y if k == 1 else _up(y, size8))
    f8 = _cbr(sd, f"{d}.fusion8", torch.cat(outs, 1))
    s4 = _cbr(sd, f"{d}.skipconv4", layer1)
    f4 = _cbr(sd, f"{d}.fusion4", torch.cat([_up(f8, s4.shape[-2:]), s4], 1))
    s2 = _cbr(sd, f"{d}.skipconv2", stem)
    f2 = _cbr(sd, f"{d}.fusion2", torch.cat([_up(f4, s2.shape[-2:]), s2], 1))
    return _conv(sd, f"{d}.head", f2)


def forward(sd, rgb255, sparse):
    """rgb255: (B, 3, H, W) float RGB 0-255; sparse: (B, 4, H, W). Returns (logits, flow).

    logits (B, 198, H/2, W/2); flow (B, 2, H, W) in input pixels (expected bin value,
    bilinear align_corners=True upsampling).
    """
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    code, stem, layer1 = image_encoder(sd, (rgb255 - mean) / std)
    logits = decoder(sd, torch.cat([code, flow_encoder(sd, sparse)], 1), layer1, stem)
    step = 2 * FMAX / BINS
    centres = torch.tensor([-FMAX + step * (i + 0.5) for i in range(BINS)]).view(1, BINS, 1, 1)
    fx = (F.softmax(logits[:, :BINS], 1) * centres).sum(1, keepdim=True)
    fy = (F.softmax(logits[:, BINS:], 1) * centres).sum(1, keepdim=True)
    return logits, _up(torch.cat([fx, fy], 1), rgb255.shape[-2:])
