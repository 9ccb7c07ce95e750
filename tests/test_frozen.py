"""The frozen bf16 image encoder (cmp.model.frozen) and the engine's choice of encoder."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cmp.device import Runtime
from cmp.engine import Engine
from cmp.model import build_cmp
from cmp.model.config import TINY, TINY_AFFINITY
from cmp.model.frozen import FrozenEncoder, fold_batchnorm

KINDS = {"bins": TINY, "affinity": TINY_AFFINITY}


def _model(cfg, seed=0):
    """A random network whose BatchNorms have non-trivial statistics (folding them is not a no-op)."""
    torch.manual_seed(seed)
    m = build_cmp(cfg).eval()
    g = torch.Generator().manual_seed(seed + 1)
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm2d):
            n = bn.num_features
            bn.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            bn.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            bn.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return m


def _tensors(feats):
    return [t.float() for t in feats.tensors()]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_folding_batchnorm_keeps_the_encoding_and_removes_the_batchnorms_after_convolutions(kind):
    import copy

    m = _model(KINDS[kind])
    folded = copy.deepcopy(m)
    for name in m.encode_only:
        fold_batchnorm(folded.get_submodule(name))
    before = sum(isinstance(x, nn.BatchNorm2d) for x in m.modules())
    after = sum(isinstance(x, nn.BatchNorm2d) for x in folded.modules())
    assert after < before * 0.8
    img = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(_tensors(m.encode_image(img)), _tensors(folded.encode_image(img))):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_frozen_graph_is_traced_once_and_holds_for_other_input_sizes(kind):
    m = _model(KINDS[kind])
    enc = FrozenEncoder(m, torch.float32)
    assert not enc.ready
    first = torch.randn(1, 3, 128, 128)
    enc(first)
    graph = enc._graph
    for shape in ((96, 128), (128, 72), (160, 160)):  # other sizes and aspect ratios than the traced one
        img = torch.randn(1, 3, *shape)
        got = enc(img)
        with torch.no_grad():
            ref = m.encode_image(img)
        assert type(got) is type(ref) and tuple(got.size) == tuple(ref.size) == shape
        for a, b in zip(_tensors(ref), _tensors(got)):
            assert a.shape == b.shape
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
    assert enc._graph is graph


def test_bf16_frozen_encoding_matches_eager_bf16_autocast_within_round_off():
    m = _model(TINY_AFFINITY)
    img = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        ref = m.encode_image(img)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            eager = m.encode_image(img)
    got = FrozenEncoder(m, torch.bfloat16)(img)
    for r, e, g in zip(_tensors(ref), _tensors(eager), _tensors(got)):
        scale = float(r.abs().max())
        assert float((e - r).abs().max()) < 0.05 * scale
        assert float((g - r).abs().max()) < 0.05 * scale  # no worse than autocast's own round-off, in kind


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_engine_freezes_only_bf16_on_a_cpu_and_gives_the_same_flow(kind):
    rgb = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    arrows = [(40, 40, 6.0, -3.0)]
    m = _model(KINDS[kind])
    assert not Engine(m, Runtime.create("cpu", "fp32"), side=128).frozen
    eager = Engine(m, Runtime.create("cpu", "bf16"), side=128, freeze=False)
    frozen = Engine(m, Runtime.create("cpu", "bf16"), side=128)
    assert frozen.frozen and not eager.frozen
    # the frozen copy of the encoding weights is counted (bf16: half their fp32 bytes)
    enc = sum(t.numel() for name in m.encode_only for t in m.get_submodule(name).parameters())
    assert frozen.weight_bytes - eager.weight_bytes >= 2 * enc
    a = eager.propagate(eager.set_image(rgb), arrows)
    b = frozen.propagate(frozen.set_image(rgb), arrows)
    assert float(np.abs(a - b).max()) < 0.05 * float(np.abs(a).max()) + 1e-3


def test_a_model_that_cannot_be_traced_falls_back_to_the_eager_encoder(monkeypatch):
    rgb = np.random.default_rng(1).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    m = _model(TINY_AFFINITY)
    eng = Engine(m, Runtime.create("cpu", "bf16"), side=96)
    ref = Engine(m, Runtime.create("cpu", "bf16"), side=96, freeze=False)

    def refuse(self, example):
        raise RuntimeError("cannot trace this")

    monkeypatch.setattr(FrozenEncoder, "prepare", refuse)
    with pytest.warns(UserWarning, match="frozen encoder unavailable"):
        h = eng.set_image(rgb)
    assert not eng.frozen
    np.testing.assert_array_equal(eng.propagate(h, [(20, 20, 5.0, 0.0)]),
                                  ref.propagate(ref.set_image(rgb), [(20, 20, 5.0, 0.0)]))
