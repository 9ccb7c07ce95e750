"""The click's object as a random walk on the model's embedding (cmp.walk) and its place in segment()."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cmp.engine import Engine, ImageHandle, ImageNotCached
from cmp.segment import frame_pins, score_from_flows, segment
from cmp.walk import (WALK_LEVEL_FIRST, WALK_LEVEL_LATER, WALK_NEGATIVE_RADIUS, WALK_POOL, Embedding, WalkGraph,
                      walk_graph, walk_probability, walk_score)


def _grid(features: np.ndarray) -> np.ndarray:
    """(h, w) or (h, w, D) values -> the (D, h, w) float32 grid the walk reads."""
    f = np.asarray(features, np.float32)
    return (f[None] if f.ndim == 2 else np.moveaxis(f, -1, 0)).copy()


def test_the_walk_stays_inside_what_the_embedding_joins():
    g = np.zeros((20, 30), np.float32)
    g[:, 15:] = 3.0  # two flat regions with an embedding edge between them
    p = walk_probability(_grid(g), 1.0, np.array([[4, 10]]), np.array([[25, 10]]), border=False)
    assert p.shape == (20, 30) and p.dtype == np.float32
    assert p[:, :15].min() > 0.99 and p[:, 15:].max() < 0.01


def test_a_part_joined_to_the_clicked_one_comes_along_and_a_nearer_background_does_not():
    # a U: two arms joined at the bottom; the click is at the top of the left arm
    g = np.zeros((40, 40), np.float32)
    g[5:35, 8:12] = g[5:35, 28:32] = g[31:35, 8:32] = 2.0
    p = walk_probability(_grid(g), 1.0, np.array([[10, 7]]), np.zeros((0, 2)))
    far_arm = p[6:10, 29:31].mean()     # 18 cells away, joined through the bottom
    near_bg = p[6:10, 15:17].mean()     # 5 cells away, background
    assert far_arm > 0.5 > near_bg


def test_seeds_decide_the_trivial_cases_and_a_positive_square_wins_over_a_negative_one():
    grid = _grid(np.random.default_rng(0).normal(size=(12, 12, 3)))
    assert not walk_probability(grid, 1.0, np.zeros((0, 2)), np.array([[3, 3]])).any()
    assert (walk_probability(grid, 1.0, np.array([[6, 6]]), np.zeros((0, 2)), border=False) == 1).all()
    # the negative square (radius 2) covers the positive click; the positive one is marked last
    p = walk_probability(grid, 1.0, np.array([[6, 6]]), np.array([[6 + WALK_NEGATIVE_RADIUS, 6]]), border=False)
    assert p[6, 6] == 1.0 and p[6, 6 + WALK_NEGATIVE_RADIUS + 1] == 0.0


def test_the_border_is_background_except_near_a_positive_click():
    g = _grid(np.zeros((30, 30)))  # one flat region: only the seeds shape the chances
    p = walk_probability(g, 1.0, np.array([[15, 15]]), np.zeros((0, 2)))
    assert p[0, 0] == 0 and p[29, 15] == 0 and p[15, 15] == 1
    near = walk_probability(g, 1.0, np.array([[1, 15]]), np.zeros((0, 2)))
    assert near[15, 0] > 0.5  # the border beside the click is not a seed


class _WalkEngine:
    """An engine with an embedding of two flat halves (left / right) and no probes."""

    def __init__(self, h, w, side=64):
        self.h, self.w, self.side = h, w, side

    def embedding(self, handle):
        tf = handle.transform
        H, W = tf.model_size
        v = np.zeros((2, H // 2, W // 2), np.float32)
        v[0, :, (W // 2) // 2:] = 3.0
        return Embedding(v, (H // 2, W // 2), 1.0)

    def walk_graph(self, handle):  # as Engine.walk_graph, without its cache
        return walk_graph(self.embedding(handle))


def test_walk_score_is_in_the_views_pixels_and_its_level_depends_on_the_click():
    h, w = 48, 64
    eng = _WalkEngine(h, w)
    handle = ImageHandle("k", h, w, 64)
    first = walk_score(eng, handle, [(10, 24)], [(60, 4)], first=True, border=False)
    later = walk_score(eng, handle, [(10, 24)], [(60, 4)], first=False, border=False)
    assert first.shape == later.shape == (h, w)
    assert first[:, :28].min() > 0.5 and first[:, 36:].max() < 0.5  # the clicked half is the object
    # the same chances, rescaled so that each level reads 0.5
    inside = (later > 0.01) & (first < 1)
    assert inside.any()
    np.testing.assert_allclose(first[inside] * WALK_LEVEL_FIRST, later[inside] * WALK_LEVEL_LATER, rtol=1e-4)
    bordered = walk_score(eng, handle, [(10, 24)], [(60, 4)], first=True)
    assert bordered[0, 5] == 0 and bordered[24, 10] == 1  # the frame is background away from the click
    assert walk_score(object(), handle, [(10, 24)], [], first=True) is None  # nothing to walk on


def test_segment_walks_on_an_affinity_model_and_keeps_the_probes_elsewhere(tiny_engine):
    from cmp.device import Runtime
    from cmp.model import TINY_AFFINITY, build_cmp

    torch.manual_seed(0)
    eng = Engine(build_cmp(TINY_AFFINITY), Runtime.create("cpu", "fp32"), side=128, name="tiny-affinity-walk")
    rgb = np.zeros((96, 128, 3), np.uint8)
    rgb[20:70, 30:90] = (200, 60, 40)
    walked = segment(eng, rgb, [(60, 45)], zoom=False, refine=None, clean=False, evidence=True)  # the walk
    probed = segment(eng, rgb, [(60, 45)], zoom=False, refine=None, clean=False, walk=False, evidence=True)
    assert walked.flows.shape == probed.flows.shape == (4, 96, 128, 2)  # the evidence: the probes' motion
    np.testing.assert_array_equal(walked.flows, probed.flows)
    # by default (no evidence asked for) the walk alone runs: the same score and mask, no flows
    bare = segment(eng, rgb, [(60, 45)], zoom=False, refine=None, clean=False)
    assert bare.flows is None
    np.testing.assert_array_equal(bare.score, walked.score)
    np.testing.assert_array_equal(bare.mask, walked.mask)
    assert segment(eng, rgb, [(60, 45)], zoom=False, walk=False, evidence=False).flows is not None
    assert (walked.source, bare.source, probed.source) == ("walk", "walk", "probes")  # the evidence's caption
    np.testing.assert_allclose(probed.score, score_from_flows(probed.flows))
    assert not np.allclose(walked.score, probed.score)
    h = eng.set_image(rgb)
    pins = frame_pins(96, 128, [(60, 45)])  # what segment() adds to the negatives
    np.testing.assert_allclose(walked.score, walk_score(eng, h, np.array([[60, 45]]), pins, first=True))
    # the bin decoder has no embedding: its score stays the probes'
    assert tiny_engine.embedding(tiny_engine.set_image(rgb)) is None
    assert tiny_engine.walk_graph(tiny_engine.set_image(rgb)) is None
    plain = segment(tiny_engine, rgb, [(60, 45)], zoom=False, refine=None, clean=False, evidence=False)
    np.testing.assert_allclose(plain.score, score_from_flows(plain.flows))
    assert plain.source == "probes"


def test_embedding_covers_the_image_and_needs_the_image_cached():
    from cmp.device import Runtime
    from cmp.model import TINY_AFFINITY, build_cmp

    torch.manual_seed(0)
    eng = Engine(build_cmp(TINY_AFFINITY), Runtime.create("cpu", "fp32"), side=128, name="tiny-affinity-emb")
    h = eng.set_image(np.full((50, 128, 3), 90, np.uint8))  # padded to a taller model input
    emb = eng.embedding(h)
    H, W = h.transform.model_size
    assert emb.values.shape[1:] == (H // 2, W // 2) and emb.beta > 0
    ih, iw = h.transform.inner_size
    assert emb.inner[1] == W // 2 and emb.inner[0] < H // 2 and emb.inner[0] >= ih // 2
    graph = eng.walk_graph(h)  # built once, kept beside the features
    assert eng.walk_graph(h) is graph
    assert graph.size == emb.values.shape[1:] and graph.inner == emb.inner
    assert graph.shape == (-(-emb.inner[0] // WALK_POOL), -(-emb.inner[1] // WALK_POOL))
    assert graph.right.nbytes + graph.down.nbytes <= WalkGraph.nbytes_for(*graph.size)
    eng.cache.clear()
    with pytest.raises(ImageNotCached):
        eng.embedding(h)
    with pytest.raises(ImageNotCached):
        eng.walk_graph(h)


def test_the_walk_reads_an_embedding_at_the_sharpness_its_model_names():
    from dataclasses import replace

    from cmp.device import Runtime
    from cmp.model import TINY_AFFINITY, build_cmp
    from cmp.walk import WALK_SHARPNESS, edge_weights

    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[10:50, 20:70] = (200, 60, 40)
    graphs = {}
    for sharp in (WALK_SHARPNESS, 16.0):
        torch.manual_seed(0)  # the same weights; only the config's sharpness differs
        model = build_cmp(replace(TINY_AFFINITY, head=replace(TINY_AFFINITY.head, walk_sharpness=sharp)))
        eng = Engine(model, Runtime.create("cpu", "fp32"), side=96, name=f"tiny-affinity-sharp{sharp}")
        h = eng.set_image(rgb)
        emb = eng.embedding(h)
        assert emb.sharpness == sharp
        graphs[sharp] = eng.walk_graph(h)
        hh, ww = emb.inner
        pooled = torch.nn.functional.avg_pool2d(torch.from_numpy(emb.values[:, :hh, :ww])[None], WALK_POOL,
                                                ceil_mode=True)[0].numpy()
        np.testing.assert_allclose(graphs[sharp].right, edge_weights(pooled, emb.beta, sharp)[0])
    # a sharper walk cuts harder: every weight below 1 falls, to the power 16 / 4
    soft, sharp = graphs[WALK_SHARPNESS].right, graphs[16.0].right
    np.testing.assert_allclose(sharp, (soft - 1e-6) ** (16.0 / WALK_SHARPNESS) + 1e-6, rtol=1e-4, atol=1e-9)
    assert (sharp <= soft + 1e-12).all() and (sharp < soft).any()


def test_the_solve_reuses_its_factorization_and_matches_a_direct_solve():
    """Every system of one grid shape shares a sparsity pattern, so one symbolic factorization is
    refactored for new seeds and weights; each answer equals SuperLU's solve of the unseeded cells."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    from cmp.walk import edge_weights, seed_labels, solve_walk

    rng = np.random.default_rng(3)
    for _ in range(3):  # new weights and new seeds on the same 20 x 30 grid
        right, down = edge_weights(rng.normal(size=(4, 20, 30)).astype(np.float32), float(rng.uniform(0.2, 2)))
        pos, neg = rng.integers(2, 18, size=(2, 2)), rng.integers(2, 18, size=(3, 2))
        labels = seed_labels(20, 30, pos, neg)
        got = solve_walk(right, down, labels)
        # the reference: the Laplacian built from the edge list, solved on the unseeded cells
        idx = np.arange(600).reshape(20, 30)
        i = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
        j = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
        wt = np.concatenate([right.ravel(), down.ravel()])
        lap = sp.coo_matrix((np.concatenate([-wt, -wt]), (np.concatenate([i, j]), np.concatenate([j, i]))),
                            shape=(600, 600)).tocsr()
        lap = lap - sp.diags(np.asarray(lap.sum(1)).ravel())
        u, lab = labels.ravel() < 0, labels.ravel()
        x = (lab == 1).astype(float)
        x[u] = spla.spsolve(lap[u][:, u].tocsc(), -lap[u][:, ~u] @ x[~u])
        np.testing.assert_allclose(got.ravel(), x, atol=1e-5)


def test_cli_segment_walks_by_default_and_no_walk_writes_the_probes_mask(tmp_path):
    """The CLI's default is the walk of ``candidate_clicks(..., walk=True)``; ``--no-walk`` the
    probes' (``walk=False``), which differ on this image; ``--walk`` says the default again.
    ``eval segmentation --methods probes`` reports the probes under their own name."""
    from PIL import Image

    from cmp.checkpoints import save_checkpoint
    from cmp.model import TINY_AFFINITY, build_cmp
    from cmp.candidates import best_candidate, candidate_clicks
    from cmp.segment import DEFAULT_WALK
    from helpers import run_cli

    assert DEFAULT_WALK
    torch.manual_seed(0)
    ck = save_checkpoint(build_cmp(TINY_AFFINITY), tmp_path / "aff.safetensors")
    rgb = np.zeros((80, 120, 3), np.uint8)
    rgb[15:65, 25:95] = (200, 60, 40)
    rgb[30:50, 45:75] = (40, 160, 200)
    img = tmp_path / "in.png"
    Image.fromarray(rgb).save(img)
    masks = {}
    for name, flag in (("default", ()), ("walk", ("--walk",)), ("probes", ("--no-walk",))):
        out = tmp_path / f"mask-{name}.png"
        r = run_cli("segment", "--image", img, "--positive", "60,40", "--checkpoint", ck, "--device", "cpu",
                    "--precision", "fp32", "--out", out, *flag, timeout=300)
        assert r.returncode == 0, r.stderr
        masks[name] = np.asarray(Image.open(out)) == 255
    eng = Engine.from_checkpoint(str(ck), device="cpu", precision="fp32")
    for name, walk in (("default", True), ("walk", True), ("probes", False)):
        cands = candidate_clicks(eng, rgb, [(60, 40, True)], walk=walk)
        np.testing.assert_array_equal(masks[name], cands[best_candidate(cands)].mask)
    assert not np.array_equal(masks["default"], masks["probes"])
    rep = tmp_path / "rep.json"
    r = run_cli("eval", "segmentation", "--checkpoint", ck, "--device", "cpu", "--precision", "fp32",
                "--datasets", "composites", "--n-images", "1", "--methods", "probes", "--max-clicks", "5",
                "--json", rep, timeout=300)
    assert r.returncode == 0, r.stderr
    methods = json.loads(rep.read_text())["methods"]  # one set: its report alone
    assert list(methods) == ["cmp, most confident of 3, probes"]
