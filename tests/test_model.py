"""Our CMP network is the original one: same state dict, same numbers."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import reference_cmp as ref
from cmp.device import Runtime
from cmp.engine import Engine
from cmp.model import CONFIGS, RESNET50, TINY, CMPConfig, build_cmp, normalize_image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
TSV = Path(__file__).parent / "data" / "cmp_resnet50_state_dict.tsv"


def test_state_dict_names_shapes_dtypes_match_the_original():
    rows = [line.split("\t") for line in TSV.read_text().splitlines() if line.strip()]
    assert len(rows) == 455
    expected = {name.removeprefix("module."): (shape, dtype) for name, shape, dtype in rows}
    ours = {k: (str(tuple(v.shape)), str(v.dtype)) for k, v in build_cmp(RESNET50).state_dict().items()}
    assert sorted(ours) == sorted(expected)
    assert {k: v for k, v in ours.items() if v != expected[k]} == {}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_json_round_trip(name):
    cfg = CONFIGS[name]
    assert CMPConfig.from_json(cfg.to_json()) == cfg


def test_bins_to_flow_expected_value():
    m = build_cmp(TINY)
    n, fmax = TINY.head.num_bins, TINY.head.fmax
    step = 2 * fmax / n
    logits = torch.full((1, 2 * n, 2, 3), -1e4)
    logits[:, 0] = 1e4            # x: all mass on the first bin
    logits[:, n + n - 1] = 1e4    # y: all mass on the last bin
    flow = m.logits_to_flow(logits, (4, 6))
    assert flow.shape == (1, 2, 4, 6)
    torch.testing.assert_close(flow[:, 0], torch.full((1, 4, 6), -fmax + step / 2))
    torch.testing.assert_close(flow[:, 1], torch.full((1, 4, 6), fmax - step / 2))
    # Uniform logits: the expected value is the middle of the symmetric bins, i.e. zero.
    torch.testing.assert_close(m.logits_to_flow(torch.zeros(1, 2 * n, 2, 2), (2, 2)),
                               torch.zeros(1, 2, 2, 2), atol=1e-5, rtol=0)


def randomised(cfg: CMPConfig = RESNET50, seed: int = 0):
    """A CMP network with random weights and random (but sane) BatchNorm statistics.

    Kaiming weights, BN statistics measured on a random batch and then perturbed,
    and the head scaled so logits spread over several bins: a model whose
    output depends on every layer, unlike a default-initialised one whose
    softmax is nearly uniform.
    """
    g = torch.Generator().manual_seed(seed)
    m = build_cmp(cfg)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(mod.weight, nonlinearity="relu", generator=g)
                if mod.bias is not None:
                    mod.bias.normal_(0, 0.1, generator=g)
            elif isinstance(mod, torch.nn.BatchNorm2d):
                mod.momentum = None  # cumulative average over the calibration batch
                mod.reset_running_stats()
                mod.weight.uniform_(0.5, 1.5, generator=g)
                mod.bias.normal_(0, 0.1, generator=g)
        m.train()
        sparse = torch.zeros(2, 4, 128, 128)
        sparse[:, :, 40, 70] = torch.tensor([10.0, -5.0, 1.0, 1.0])
        m(normalize_image(torch.rand(2, 3, 128, 128, generator=g) * 255), sparse)
        m.eval()
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.momentum = 0.1
                n = mod.num_features
                mod.running_mean.add_(torch.randn(n, generator=g) * 0.1 * mod.running_var.sqrt())
                mod.running_var.mul_(torch.rand(n, generator=g) * 0.5 + 0.75)
        logits = m(normalize_image(torch.rand(1, 3, 128, 128, generator=g) * 255), torch.zeros(1, 4, 128, 128))
        k = 2.0 / logits.std()
        m.flow_decoder.head.weight.mul_(k)
        m.flow_decoder.head.bias.mul_(k)
    return m


def test_flow_equals_functional_reference_at_384():
    """Same weights, same 384x384 image and arrows -> the original forward pass's flow.

    The reference is evaluated in float64 as ground truth; our float32 paths
    (the plain module forward and the cached engine, channels_last) must be as
    close to it as the float32 evaluation of the reference itself is, i.e.
    differ only by float32 round-off.
    """
    torch.manual_seed(0)
    model = randomised(RESNET50)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (384, 384, 3), dtype=np.uint8)
    arrows = [(100, 50, 12.0, -7.5), (301, 222, -20.0, 3.0)]
    pins = [(10, 370)]
    sparse = torch.zeros(1, 4, 384, 384)
    for x, y, dx, dy in arrows + [(px, py, 0.0, 0.0) for px, py in pins]:
        sparse[0, :, y, x] = torch.tensor([dx, dy, 1.0, 1.0])  # row y, column x
    img = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()

    with torch.no_grad():
        logits32, flow32 = ref.forward(sd, img, sparse)
        sd64 = {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}
        logits64, flow64 = ref.forward(sd64, img.double(), sparse.double())
        ours_logits = model(normalize_image(img), sparse)
    assert logits64.std() > 1.0 and flow64.abs().max() > 10  # a model whose output says something
    logit_tol = 2 * float((logits32.double() - logits64).abs().max()) + 1e-6
    torch.testing.assert_close(ours_logits.double(), logits64, atol=logit_tol, rtol=0)

    engine = Engine(model, Runtime.create("cpu", "fp32"), side=384)
    flow = engine.propagate(engine.set_image(rgb), arrows=arrows, pins=pins)
    assert flow.shape == (384, 384, 2) and flow.dtype == np.float32
    truth = flow64[0].permute(1, 2, 0)
    flow_tol = 2 * float((flow32[0].permute(1, 2, 0).double() - truth).abs().max()) + 1e-6
    assert flow_tol < 0.05  # float32 round-off, far below one bin (about 1 px)
    torch.testing.assert_close(torch.from_numpy(flow).double(), truth, atol=flow_tol, rtol=0)


@pytest.mark.parametrize("name", ["tiny", "slim-resnet"])
def test_split_forward_equals_whole_network(name):
    """Image parts cached once + guidance parts per set == the plain forward, per set."""
    m = randomised(CONFIGS[name])
    img = normalize_image(torch.rand(1, 3, 72, 104) * 255)
    sparse = torch.zeros(3, 4, 72, 104)
    sparse[0, :, 10, 20] = torch.tensor([5.0, -2.0, 1.0, 1.0])
    sparse[1, :, 60, 90] = torch.tensor([-8.0, 3.0, 1.0, 1.0])
    with torch.no_grad():
        feats = m.encode_image(img)
        split = m.decode_logits(feats, sparse)
        whole = m(img.expand(3, -1, -1, -1), sparse)
        truth = copy.deepcopy(m).double()(img.double().expand(3, -1, -1, -1), sparse.double())
    assert feats.size == (72, 104) and feats.nbytes() > 0
    # As close to the float64 truth as the plain float32 forward is: float32 round-off only.
    tol = 2 * float((whole.double() - truth).abs().max()) + 1e-7
    torch.testing.assert_close(split.double(), truth, atol=tol, rtol=0)
    assert (truth[0] - truth[1]).abs().max() > 100 * tol  # guidance changes the answer


def test_guidance_survives_bf16_autocast():
    """Regression: under bf16 autocast the sparse encoder's BatchNorm (statistics of an
    almost-all-zero map) rounded the guidance away; it must run in fp32 and the
    guidance must change the answer about as much as in fp32."""
    from cmp.model import TINY

    m = randomised(TINY)
    img = normalize_image(torch.rand(1, 3, 64, 96) * 255)
    sparse = torch.zeros(2, 4, 64, 96)
    sparse[1, :, 30, 40] = torch.tensor([12.0, -7.0, 1.0, 1.0])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        code = m.sparse_code(sparse)
        low = m(img.expand(2, -1, -1, -1), sparse).float()
    with torch.no_grad():
        ref = m(img.expand(2, -1, -1, -1), sparse)
    assert code.dtype == torch.float32
    effect_ref = (ref[1] - ref[0]).abs().max()
    effect_low = (low[1] - low[0]).abs().max()
    assert effect_ref > 0.1
    assert abs(float(effect_low - effect_ref)) < 0.2 * float(effect_ref)
