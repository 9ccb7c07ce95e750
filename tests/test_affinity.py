"""Affinity propagation (the shipped compact model): the blend's algebra, the embedding's role,
precision, and its checkpoints."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cmp.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from cmp.guidance import encode_sparse
from cmp.model import TINY_AFFINITY, AffinityFeatures, build_cmp

H = W = 64


def model(seed=0):
    torch.manual_seed(seed)
    return build_cmp(TINY_AFFINITY)


def halves(d=8, null=-1e4):
    """Features whose embedding is constant on the left half and a different constant on the right."""
    e = torch.zeros(1, d, H // 2, W // 2)
    e[:, 0, :, : W // 4] = 5.0
    e[:, 1, :, W // 4:] = 5.0
    return AffinityFeatures(e, torch.full((1, 1, H // 2, W // 2), float(null)), (H, W))


def sparse(points):
    return encode_sparse(np.asarray(points, float).reshape(-1, 4), (H, W))[None]


@pytest.mark.parametrize("blend", ["mean", "affine"])
def test_same_motion_everywhere_when_every_point_agrees(blend):
    m = model()
    with torch.no_grad():
        out = m.decode(halves(), sparse([[5, 5, 3.0, -2.0], [50, 40, 3.0, -2.0], [30, 60, 3.0, -2.0]]), blend=blend)
    flow = m.to_flow(out, (H, W))
    torch.testing.assert_close(flow[0, 0], torch.full((H, W), 3.0))
    torch.testing.assert_close(flow[0, 1], torch.full((H, W), -2.0))


@pytest.mark.parametrize("blend", ["mean", "affine"])
def test_motion_stays_inside_what_the_embedding_groups(blend):
    m = model()
    with torch.no_grad():  # left point moves right, right point is pinned
        flow = m.to_flow(m.decode(halves(), sparse([[8, 32, 6.0, 0.0], [56, 32, 0.0, 0.0]]), blend=blend), (H, W))
    left, right = flow[0, 0, :, :28], flow[0, 0, :, 36:]
    assert left.min() > 5.9 and right.abs().max() < 0.1


def test_scene_motion_mode_moves_what_the_null_option_would_hold():
    m = model()
    feats = halves(null=1e4)  # the stay-still option wins everywhere it is offered
    with torch.no_grad():
        held = m.to_flow(m.decode(feats, sparse([[8, 32, 6.0, 0.0]])), (H, W))
        panned = m.to_flow(m.decode(feats, sparse([[8, 32, 6.0, 0.0]]), still=False), (H, W))
        # near and far: each half follows the arrow that looks like it, nothing stays still
        layers = m.to_flow(m.decode(feats, sparse([[8, 32, 6.0, 0.0], [56, 32, 2.0, 0.0]]), still=False), (H, W))
    assert held.abs().max() < 1e-3
    torch.testing.assert_close(panned[0, 0], torch.full((H, W), 6.0))  # one arrow pans everything
    assert panned[0, 1].abs().max() < 1e-6
    assert layers[0, 0, :, :28].min() > 5.9 and (layers[0, 0, :, 36:] - 2.0).abs().max() < 0.1


def test_the_mode_can_be_chosen_per_guidance_set():
    m = model()
    feats = halves(null=0.0)
    sets = torch.cat([sparse([[8, 32, 6.0, 0.0]]), sparse([[50, 20, 0.0, 4.0]])])
    with torch.no_grad():
        mixed = m.decode(feats, sets, still=[True, False])
        torch.testing.assert_close(mixed[0], m.decode(feats, sets[:1])[0])
        torch.testing.assert_close(mixed[1], m.decode(feats, sets[1:], still=False)[0])
    with pytest.raises(ValueError, match="still flags"):
        m.decode(feats, sets, still=[True])


def test_the_null_option_keeps_unguided_regions_still():
    m = model()
    feats = halves(null=0.0)
    feats = feats._replace(null=torch.where(torch.arange(W // 2) < W // 4, -1e4, 1e4).expand(1, 1, H // 2, -1))
    with torch.no_grad():
        flow = m.to_flow(m.decode(feats, sparse([[8, 32, 6.0, 0.0]])), (H, W))
    assert flow[0, 0, :, :28].min() > 5.9 and flow[0, 0, :, 36:].abs().max() < 1e-3


def test_no_guidance_gives_zero_motion():
    m = model()
    with torch.no_grad():
        out = m(torch.randn(2, 3, H, W), torch.zeros(2, 4, H, W))
    assert out.shape == (2, 2, H // 2, W // 2) and out.abs().max() == 0


def test_cached_decode_equals_forward_and_sets_are_independent():
    m = model()
    img = torch.randn(1, 3, H, W)
    s = torch.cat([sparse([[10, 10, 4.0, 1.0]]), sparse([[10, 10, -4.0, 0.0], [40, 50, 0.0, 3.0]])])
    with torch.no_grad():
        feats = m.encode_image(img)
        both = m.decode(feats, s)
        one = m.decode(feats, s[1:])
        full = m(img.expand(2, -1, -1, -1), s)
    torch.testing.assert_close(both[1:], one)
    torch.testing.assert_close(both, full, atol=1e-4, rtol=1e-4)
    assert (both[0] - both[1]).abs().max() > 0.1


def test_the_blend_runs_in_fp32_under_bf16_autocast():
    m = model()
    img = torch.randn(1, 3, H, W)
    s = sparse([[10, 10, 7.0, 1.0], [40, 50, -3.0, 2.0]])
    with torch.no_grad():
        feats = m.encode_image(img)
        ref = m.decode(feats, s)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = m.decode(feats, s)
            enc = m.encode_image(img)
    assert low.dtype == torch.float32 and enc.embed.dtype == torch.float32
    torch.testing.assert_close(low, ref)


def test_affinity_checkpoint_round_trip(tmp_path):
    src = model(3)
    path = save_checkpoint(src, tmp_path / "aff.safetensors", note="x")
    ck = load_checkpoint(path)
    assert ck.config == TINY_AFFINITY and type(ck.model).__name__ == "AffinityCMP"
    for k, v in src.state_dict().items():
        torch.testing.assert_close(ck.model.state_dict()[k], v)


def test_unknown_head_kind_is_refused(tmp_path):
    from safetensors.torch import save_file
    cfg = json.loads(TINY_AFFINITY.to_json())
    cfg["head"]["kind"] = "telepathy"
    sd = {k: v for k, v in model().state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(sd, str(tmp_path / "odd.safetensors"), metadata={"cmp_config": json.dumps(cfg)})
    with pytest.raises(CheckpointError, match="telepathy"):
        load_checkpoint(tmp_path / "odd.safetensors")


# -- the spread statistic of the "stay still" option ------------------------------

def test_guidance_spread_is_zero_for_one_spot_and_about_one_for_points_strewn_at_random():
    from cmp.model.affinity import guidance_spread
    rng = np.random.default_rng(0)
    ys, xs = torch.tensor(rng.integers(0, 300, 400)), torch.tensor(rng.integers(0, 400, 400))
    moving = torch.ones(400, dtype=torch.bool)
    assert abs(float(guidance_spread(ys, xs, moving, 300, 400)) - 1.0) < 0.1
    one = guidance_spread(torch.tensor([10]), torch.tensor([20]), torch.ones(1, dtype=torch.bool), 300, 400)
    assert float(one) == 0.0
    same_spot = guidance_spread(torch.tensor([10, 10]), torch.tensor([20, 20]), torch.ones(2, dtype=torch.bool), 300, 400)
    assert float(same_spot) == 0.0
    # Still points do not count: two moving points close together stay close to 0.
    ys2, xs2 = torch.tensor([10, 12, 290, 0]), torch.tensor([20, 22, 390, 399])
    vec = torch.tensor([[3.0, 0.0], [3.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    moving2 = vec.norm(dim=1) > 0.5  # which points move (MOVING_PX)
    assert float(guidance_spread(ys2, xs2, moving2, 300, 400)) < 0.02


def test_still_prior_2_at_zero_offsets_is_still_prior_1_and_a_negative_spread_weight_moves_the_rest():
    from dataclasses import replace
    torch.manual_seed(0)
    v2 = build_cmp(TINY_AFFINITY)
    v1 = build_cmp(replace(TINY_AFFINITY, head=replace(TINY_AFFINITY.head, still_prior=1)))
    assert "null_spread" not in v1.state_dict() and "null_alpha_offset" not in v1.state_dict()
    v1.load_state_dict({k: v for k, v in v2.state_dict().items() if k in v1.state_dict()})
    feats = halves(null=0.0)  # the null option is as likely as a far guidance point
    pts = sparse([[4, 4, 5.0, 0.0], [60, 60, 5.0, 0.0], [60, 4, 5.0, 0.0]])
    with torch.no_grad():
        a, b = v2.decode(feats, pts), v1.decode(feats, pts)
        torch.testing.assert_close(a, b)
        v2.null_spread.fill_(-20.0)  # widely spread moving points: nothing stays still
        c = v2.decode(feats, pts)
    assert float(c[0, 0].mean()) > float(a[0, 0].mean()) + 0.5
    torch.testing.assert_close(c[0, 0], torch.full_like(c[0, 0], 5.0), atol=1e-3, rtol=0)


def test_still_prior_2_without_spatial_decay_moves_what_looks_like_a_far_moving_point():
    torch.manual_seed(0)
    m = build_cmp(TINY_AFFINITY)
    feats = halves(null=-4.0)  # a pixel that looks like a moving point moves with it
    one_point = sparse([[2, 32, 6.0, 0.0]])  # far left, on the left half
    with torch.no_grad():
        m.log_alpha.fill_(200.0)  # strong spatial decay: far pixels would rather stay still
        near_only = m.to_flow(m.decode(feats, one_point), (H, W))
        m.null_alpha_offset.fill_(-300.0)  # the still decision ignores distance
        looks_alike = m.to_flow(m.decode(feats, one_point), (H, W))
    right_edge_of_left_half = (slice(None), slice(24, 28))
    assert float(near_only[0, 0][right_edge_of_left_half].mean()) < 1.0
    assert float(looks_alike[0, 0][right_edge_of_left_half].min()) > 5.8  # 6 x (1 - sigmoid(-4))
    assert float(looks_alike[0, 0, :, 36:].abs().max()) < 0.1  # the other half looks different: still


def test_config_without_the_still_prior_or_walk_sharpness_field_loads_as_the_first_model():
    from dataclasses import replace

    from cmp.model import AffinityHead, CMPConfig
    d = TINY_AFFINITY.to_dict()
    assert d["head"] == {"kind": "affinity", "embed_dim": 8, "still_prior": 2}  # the walk's default sharpness unsaid
    del d["head"]["still_prior"]
    assert CMPConfig.from_dict(d).head.still_prior == 1
    assert CMPConfig.from_dict(d).head.walk_sharpness == 4.0  # files written before it was the model's
    sharp = replace(TINY_AFFINITY, head=replace(TINY_AFFINITY.head, walk_sharpness=16.0))
    assert sharp.to_dict()["head"]["walk_sharpness"] == 16.0  # a model that names its own stores it
    assert CMPConfig.from_json(sharp.to_json()) == sharp
    assert CMPConfig.from_json(TINY_AFFINITY.to_json()) == TINY_AFFINITY
    with pytest.raises(ValueError, match="still_prior"):
        build_cmp(replace(TINY_AFFINITY, head=AffinityHead(embed_dim=8, still_prior=3)))


@pytest.mark.parametrize("name", ["tiny", "tiny-affinity"])
def test_a_config_stores_only_what_its_kind_of_network_has(name):
    from cmp.model import CONFIGS
    d = CONFIGS[name].to_dict()
    assert set(d) == {"name", "encoder", "head"}
    fields = {"tiny": {"kind", "decoder", "num_bins", "fmax"}, "tiny-affinity": {"kind", "embed_dim", "still_prior"}}
    assert set(d["head"]) == fields[name]


@pytest.mark.parametrize("name", ["tiny", "tiny-affinity"])
def test_files_in_the_flat_config_layout_of_earlier_versions_still_load(tmp_path, name):
    """Files written before the head had its own type store every field flat, dead ones included."""
    import dataclasses

    from safetensors.torch import save_file

    from cmp.model import CONFIGS
    cfg = CONFIGS[name]
    flat = {"name": cfg.name, "encoder": dataclasses.asdict(cfg.encoder),
            "decoder": dataclasses.asdict(CONFIGS["tiny"].head.decoder), "num_bins": 99, "fmax": 50.0,
            "embed_dim": 32, "still_prior": 1, "propagation": "decoder" if name == "tiny" else "affinity"}
    if name == "tiny-affinity":
        flat.update(embed_dim=8, still_prior=2)
    else:
        flat.update(num_bins=cfg.head.num_bins, fmax=cfg.head.fmax)
    torch.manual_seed(3)
    src = build_cmp(cfg)
    sd = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(sd, str(tmp_path / "old.safetensors"), metadata={"cmp_config": json.dumps(flat)})
    ck = load_checkpoint(tmp_path / "old.safetensors")
    assert ck.config == cfg
    for k, v in src.state_dict().items():
        torch.testing.assert_close(ck.model.state_dict()[k], v)


# -- guidance as points; probes sharing their weights ----------------------------------------

@pytest.mark.parametrize("blend", ["mean", "affine"])
@pytest.mark.parametrize("still_prior", [1, 2])
def test_sets_decoded_together_equal_each_set_decoded_alone(still_prior, blend):
    """The probes of a segmentation click share points and moving set, so the batch reuses
    their blend weights; every set must come out as it would alone (and as points, as a map)."""
    from dataclasses import replace

    from cmp.guidance import guidance_pixels

    torch.manual_seed(1)
    cfg = replace(TINY_AFFINITY, head=replace(TINY_AFFINITY.head, still_prior=still_prior))
    m = build_cmp(cfg).eval()
    if still_prior == 2:
        with torch.no_grad():
            m.null_spread.fill_(-0.7)
            m.null_alpha_offset.fill_(0.3)
    feats = m.encode_image(torch.randn(1, 3, H, W))
    pts = np.array([[10, 12, 0, 0], [40, 30, 0, 0], [33, 50, 0, 0], [5, 60, 0, 0]], float)
    sets = []
    for dx, dy in ((4.0, 0.0), (-4.0, 0.0), (0.0, 4.0), (0.0, -4.0)):
        s = pts.copy()
        s[:2, 2:] = [dx, dy]  # two moving points, two pins, as a click's probes
        sets.append(s)
    other_movers = pts.copy()
    other_movers[[0, 2], 2:] = [3.0, 1.0]  # same points, another two moving: its own weights
    sets += [other_movers, np.array([[20, 20, 1.0, 2.0]])]
    with torch.no_grad():
        together = m.decode_points(feats, [tuple(torch.from_numpy(a) for a in guidance_pixels(s, (H, W))) for s in sets],
                                   (H, W), blend=blend)
        alone = torch.cat([m.decode(feats, sparse(s), blend=blend) for s in sets])
        as_maps = m.decode(feats, torch.cat([sparse(s) for s in sets]), blend=blend)
    torch.testing.assert_close(together, alone, rtol=0, atol=0)
    torch.testing.assert_close(as_maps, alone, rtol=0, atol=0)
    assert together[0].abs().max() > 0  # the probes move something


# -- the affine blend ------------------------------------------------------------------------

def _uniform(size=(H, W), d=8):
    """Features that group nothing apart: every pixel looks the same."""
    h, w = size[0] // 2, size[1] // 2
    return AffinityFeatures(torch.zeros(1, d, h, w), torch.full((1, 1, h, w), -1e4), tuple(size))


def _rotation(xs, ys, centre, deg=3.0):
    """The motion of pixels (xs, ys) under a rotation by ``deg`` about ``centre``."""
    t = np.deg2rad(deg)
    x, y = xs - centre, ys - centre
    return np.cos(t) * x - np.sin(t) * y - x, np.sin(t) * x + np.cos(t) * y - y


def test_the_affine_blend_follows_a_rotation_that_the_mean_copies_in_patches():
    """Five arrows drawn from one rotation on a 256 px image (the scale the app works at):
    the affine fit between them gives back the rotation's field, the weighted mean copies
    the nearest arrow (the model card's limit)."""
    m, S = model(), 256
    px, py = np.array([48.0, 208, 48, 208, 128]), np.array([48.0, 48, 208, 208, 128])
    dx, dy = _rotation(px, py, (S - 1) / 2)
    guidance = encode_sparse(np.stack([px, py, dx, dy], 1), (S, S))[None]
    yy, xx = np.mgrid[0:S, 0:S].astype(float)
    tx, ty = _rotation(xx, yy, (S - 1) / 2)
    inside = (xx >= 48) & (xx <= 208) & (yy >= 48) & (yy <= 208)
    err = {}
    with torch.no_grad():
        for blend in ("mean", "affine"):
            f = m.to_flow(m.decode(_uniform((S, S)), guidance, still=False, blend=blend), (S, S))[0].numpy()
            err[blend] = np.hypot(f[0] - tx, f[1] - ty)[inside].mean()
    assert err["affine"] < 0.3 * err["mean"], err


def test_the_affine_blend_stays_within_the_arrows_range():
    """Far outside the arrows a fitted gradient would run away; the fit is kept within what
    the arrows themselves say."""
    m = model()
    pts = np.array([[20, 30, 0.0, 0.0], [30, 30, 4.0, 0.0], [40, 30, 8.0, 0.0]])  # a steep ramp along x
    with torch.no_grad():
        f = m.to_flow(m.decode(_uniform(), sparse(pts), still=False, blend="affine"), (H, W))[0]
    assert f[0].min() >= -1e-4 and f[0].max() <= 8 + 1e-4
    assert f[0, 30, 25] < f[0, 30, 35]  # and between them it follows the ramp


def test_an_unknown_blend_is_refused():
    with pytest.raises(ValueError, match="unknown blend"):
        model().decode(_uniform(), sparse([[8, 8, 1.0, 0.0]]), blend="median")


def test_the_features_carry_each_pixels_squared_norm_and_the_blend_reads_it():
    """encode_image (and the frozen encoder's rebuild) keep |E(p)|^2 per pixel with the features,
    counted in their bytes; a blend with them gives the same flow as one that computes them."""
    m = model(3).eval()
    with torch.inference_mode():
        feats = m.encode_image(torch.randn(1, 3, H, W))
        flat = feats.embed.reshape(feats.embed.shape[1], -1)
        assert torch.equal(feats.embed_sq[0], (flat * flat).sum(0, keepdim=True))
        assert feats.nbytes() == sum(t.numel() * 4 for t in (feats.embed, feats.null, feats.embed_sq))
        rebuilt = m.features_from_tensors(feats.tensors(), feats.size)
        assert torch.equal(rebuilt.embed_sq, feats.embed_sq)
        bare = AffinityFeatures(feats.embed, feats.null, feats.size)
        s = sparse([(10, 20, 3.0, -2.0), (40, 30, 0.0, 0.0)])
        for blend in ("mean", "affine"):
            for still in (True, False):
                assert torch.equal(m.decode(feats, s, still=still, blend=blend),
                                   m.decode(bare, s, still=still, blend=blend))
