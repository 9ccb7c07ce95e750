"""Propagation benchmark: baselines behave, datasets load honestly, the CLI runs end to end."""
from __future__ import annotations

import gzip
import json
import os

import cv2
import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from cmp.cli import main  # noqa: E402
from cmp.eval import baselines as B  # noqa: E402
from cmp.eval import propagation as P  # noqa: E402
from cmp.flow import endpoint_error  # noqa: E402


def _texture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), 2.0)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return img.astype(np.uint8)


def _two_regions(h=48, w=64):
    """Dark left half, bright right half: one strong vertical edge at x = w/2."""
    img = np.full((h, w, 3), 30, np.uint8)
    img[:, w // 2:] = 220
    return img


# -- baselines ----------------------------------------------------------------

def test_zero_flow_epe_is_mean_ground_truth_magnitude():
    pair = P.motorcycle_pairs()[0]
    pred = B.zero_flow(np.zeros((0, 4)), pair.valid.shape)
    expected = np.linalg.norm(pair.flow[pair.valid], axis=1).mean()
    assert endpoint_error(pred, pair.flow, pair.valid) == pytest.approx(expected, rel=1e-6)


def test_nearest_with_one_point_is_that_constant_flow():
    flow = B.nearest_flow(np.array([[5, 7, 2.5, -1.25]]), (20, 30))
    assert flow.shape == (20, 30, 2) and flow.dtype == np.float32
    assert np.all(flow[..., 0] == 2.5) and np.all(flow[..., 1] == -1.25)


def test_nearest_gives_each_guidance_pixel_its_own_vector():
    pts = np.array([[2, 3, 1, 0], [25, 15, 0, 4], [10, 18, -3, 2]], float)
    flow = B.nearest_flow(pts, (20, 30))
    for x, y, dx, dy in pts:
        assert tuple(flow[int(y), int(x)]) == (dx, dy)
    assert len(np.unique(flow.reshape(-1, 2), axis=0)) == 3


def test_rbf_with_identical_guidance_is_that_constant():
    pts = np.array([[x, y, 3.0, -2.0] for x, y in [(1, 1), (40, 5), (20, 30), (63, 47)]], float)
    for sigma in (None, 0.5):  # a tiny sigma must not turn far pixels into 0/0
        flow = B.rbf_flow(pts, (48, 64), sigma=sigma)
        assert np.allclose(flow[..., 0], 3.0) and np.allclose(flow[..., 1], -2.0)


def test_rbf_blends_between_points():
    pts = np.array([[0, 0, 0.0, 0.0], [63, 0, 10.0, 0.0]])
    flow = B.rbf_flow(pts, (8, 64), sigma=20.0)
    row = flow[0, :, 0]
    assert row[0] < 1 and row[-1] > 9 and np.all(np.diff(row) >= -1e-5)


def test_geodesic_reproduces_guidance_at_guidance_pixels():
    img = _texture(72, 96)
    rng = np.random.default_rng(1)
    pts = np.stack([rng.integers(0, 96, 8), rng.integers(0, 72, 8),
                    rng.normal(0, 5, 8), rng.normal(0, 5, 8)], axis=1).astype(float)
    pts = pts[np.unique(pts[:, 1] * 96 + pts[:, 0], return_index=True)[1]]
    geo = B.GeodesicBlend(img, side=48)  # cost map coarser than the image, as at 384 px
    flow = geo(pts)
    assert flow.shape == (72, 96, 2) and np.all(np.isfinite(flow))
    for x, y, dx, dy in pts:
        assert flow[int(y), int(x)] == pytest.approx([dx, dy], abs=1e-4)


def test_geodesic_distance_is_zero_at_source_and_grows_across_edges():
    geo = B.GeodesicBlend(_two_regions())  # edge at x = 32
    d = geo.distance(24, 24)
    assert d[24, 24] == 0
    same_side, across = d[4, 24], d[24, 44]  # both 20 px away; only one path crosses the edge
    assert same_side == pytest.approx(20, rel=0.25)
    assert across > 2 * same_side


def test_geodesic_blend_respects_image_edges_where_rbf_does_not():
    img = _two_regions()
    pts = np.array([[20, 24, 10.0, 0.0], [63, 24, 0.0, 0.0]])
    probe = (24, 35)  # (row, col): right of the edge at x = 32, but closer to the left point
    geo = B.GeodesicBlend(img)(pts)[probe]
    rbf = B.rbf_flow(pts, img.shape[:2], sigma=16.0)[probe]
    assert geo[0] < 3.0 and rbf[0] > 6.0


def test_geodesic_blend_takes_a_given_cost_map_instead_of_the_images_edges():
    img = np.full((48, 64, 3), 120, np.uint8)  # no colour edge anywhere
    wall = np.zeros((48, 64), np.float32)
    wall[:, 31:34] = 1.0  # an edge the photo does not show (a depth edge, say), as wide as a Sobel edge
    pts = np.array([[20, 24, 10.0, 0.0], [63, 24, 0.0, 0.0]])
    probe = (24, 35)  # right of the wall, nearer the left point
    plain = B.GeodesicBlend(img)(pts)[probe]
    walled = B.GeodesicBlend(img, cost=B.edge_cost(wall))(pts)[probe]
    assert plain[0] > 6.0 and walled[0] < 3.0


def test_gradient_cost_is_the_edge_cost_of_the_colour_edges():
    img = _two_regions()
    cost = B.gradient_cost(img)
    assert cost.shape == img.shape[:2] and cost.min() == pytest.approx(1.0)
    assert cost[:, 31:33].max() == pytest.approx(1.0 + B.GEO_EDGE_WEIGHT) and cost[:, :20].max() == pytest.approx(1.0)


def test_inverse_distance_blend_handles_shared_pixels():
    pts = np.array([[1, 1, 2.0, 0.0], [1, 1, 4.0, 0.0], [5, 5, 0.0, 8.0]])
    d = np.stack([np.hypot(*np.mgrid[0:8, 0:8] - np.array([y, x])[:, None, None]) for x, y in pts[:, :2]])
    flow = B.inverse_distance_blend(pts, d)
    assert flow[1, 1].tolist() == [3.0, 0.0] and flow[5, 5].tolist() == [0.0, 8.0]


# -- data and sampling ----------------------------------------------------------

def test_resize_pair_scales_flow_and_keeps_invalid_out():
    img = _texture(100, 200)
    flow = np.zeros((100, 200, 2), np.float32)
    flow[...] = (10.0, 4.0)
    valid = np.ones((100, 200), bool)
    valid[:, :50] = False
    flow[:, :50] = np.nan  # invalid ground truth may hold anything
    im2, f2, v2 = P.resize_pair(img, flow, valid, width=100)
    assert im2.shape == (50, 100, 3) and f2.shape == (50, 100, 2) and v2.shape == (50, 100)
    assert np.all(np.isfinite(f2[v2]))
    assert np.allclose(f2[v2], (5.0, 2.0), atol=1e-4)
    assert not v2[:, :24].any() and v2[:, 26:].all()


def test_motorcycle_pair_is_384_wide_with_leftward_flow():
    pair = P.motorcycle_pairs()[0]
    assert pair.image.shape[1] == P.EVAL_WIDTH and pair.image.dtype == np.uint8
    assert 0.5 < pair.valid.mean() < 1.0  # occlusions and unknown disparity are excluded
    assert np.all(pair.flow[pair.valid, 0] < 0) and np.all(pair.flow[..., 1] == 0)


@pytest.mark.parametrize("sampling", P.SAMPLINGS)
def test_sampled_points_are_distinct_valid_pixels_carrying_the_flow(sampling):
    pair = P.motorcycle_pairs()[0]
    pts = P.sample_points(pair, 20, sampling, np.random.default_rng(3))
    assert pts.shape == (20, 4)
    xi, yi = pts[:, 0].astype(int), pts[:, 1].astype(int)
    assert np.all(pts[:, :2] == np.stack([xi, yi], 1))
    assert pair.valid[yi, xi].all()
    assert len({(x, y) for x, y in zip(xi, yi)}) == 20
    assert np.array_equal(pts[:, 2:], pair.flow[yi, xi].astype(np.float64))
    again = P.sample_points(pair, 20, sampling, np.random.default_rng(3))
    assert np.array_equal(pts, again)


def test_watershed_sampling_tops_up_when_the_flow_has_few_regions():
    h, w = 64, 96
    flow = np.zeros((h, w, 2), np.float32)
    flow[:, w // 2:] = (4.0, 0.0)  # two regions -> very few watershed points
    pair = P.Pair("two", _texture(h, w), flow, np.ones((h, w), bool))
    pts = P.sample_points(pair, 15, "watershed", np.random.default_rng(0))
    assert len(pts) == 15 and len({tuple(p) for p in pts[:, :2]}) == 15


def test_dis_flow_recovers_a_known_shift():
    big = _texture(140, 180, seed=2)
    f1, f2 = big[20:116, 20:148], big[19:115, 17:145]  # content moves by (+3, +1) px
    flow, valid = P.dis_flow_consistent(np.ascontiguousarray(f1), np.ascontiguousarray(f2))
    assert valid.mean() > 0.7
    assert np.median(flow[valid], axis=0) == pytest.approx([3.0, 1.0], abs=0.3)


def test_video_pairs_from_a_small_clip_and_missing_data(tmp_path):
    with pytest.raises(P.DatasetUnavailable):
        P.video_pairs(root=tmp_path)
    from cmp.scenes.photos import OPENCV_DOC

    folder = tmp_path / OPENCV_DOC / "clips"
    folder.mkdir(parents=True)
    big = _texture(200, 260, seed=4)
    path = folder / "pan.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (192, 144))
    assert vw.isOpened()
    for i in range(30):  # camera pans 1 px per frame to the left: flow (+1, 0) per frame
        vw.write(cv2.cvtColor(np.ascontiguousarray(big[20:164, 40 - i:232 - i]), cv2.COLOR_RGB2BGR))
    vw.release()
    with open(path, "rb") as src, gzip.open(folder / "pan.avi.gz", "wb") as dst:
        dst.write(src.read())
    for name in ("clips/pan.avi", "clips/pan.avi.gz"):
        pairs = P.video_pairs(per_video=2, gap=4, root=tmp_path, videos=[name])
        assert len(pairs) == 2
        for p in pairs:
            start = int(p.name.split("-")[-1].split("+")[0])
            assert start >= 24  # only the held-out last 20 % of the 30 frames
            assert p.image.shape == (288, 384, 3)
            # 4 frames x 1 px at 192 px -> 8 px at 384 px width
            assert np.median(p.flow[p.valid], axis=0) == pytest.approx([8.0, 0.0], abs=0.7)


# -- the benchmark ----------------------------------------------------------------

class _NearestEngine:
    """Stands in for Engine: answers with the nearest-point flow so plumbing is checkable."""

    def __init__(self):
        self.images = []

    def set_image(self, rgb):
        self.images.append(rgb)
        return rgb.shape[:2]

    def propagate_batch(self, handle, sets):
        return np.stack([B.nearest_flow(s, handle) for s in sets])


def test_model_method_sees_the_same_points_and_image_as_baselines():
    pair = P.motorcycle_pairs()[0]
    eng = _NearestEngine()
    methods = {"model": P.model_method(eng), **P.baseline_methods()}
    res = P.evaluate_pairs([pair], methods, points=(1, 5), seeds=2, samplings=("random",))
    assert eng.images and eng.images[0] is pair.image
    assert res["random"]["model"] == res["random"]["nearest"]
    per = res["random"]
    assert per["nearest"][0] == per["rbf"][0] == per["geodesic"][0]  # one point: all constant
    assert per["zero"][0] == per["zero"][1]


def test_cli_quick_run_with_tiny_model(tmp_path, capsys, tiny_checkpoint):
    out_json, out_png = tmp_path / "r.json", tmp_path / "plot.png"
    code = main(["eval", "propagation", "--checkpoint", tiny_checkpoint, "--quick", "--device", "cpu",
                 "--precision", "fp32", "--datasets", "motorcycle,video", "--points", "1,3,10",
                 "--json", str(out_json), "--plot", str(out_png)])
    assert code == 0
    out = capsys.readouterr().out
    assert "motorcycle" in out and "geodesic" in out and "N=10" in out
    res = json.loads(out_json.read_text())
    assert res["points"] == [1, 3, 10] and res["methods"] == ["model", *P.BASELINES]
    assert set(res["datasets"]) | set(res["skipped"]) == {"motorcycle", "video"}
    for d in res["datasets"].values():
        for per in d["epe"].values():
            for vals in per.values():
                assert len(vals) == 3 and all(np.isfinite(vals)) and min(vals) >= 0
    moto = res["datasets"]["motorcycle"]["epe"]["random"]
    pair = P.motorcycle_pairs()[0]
    assert moto["zero"][0] == pytest.approx(np.linalg.norm(pair.flow[pair.valid], axis=1).mean(), abs=1e-3)
    assert moto["nearest"][2] < moto["zero"][2]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_scene_mode_of_an_affinity_model_is_a_method_of_its_own(tmp_path, capsys):
    import torch

    from cmp.checkpoints import save_checkpoint
    from cmp.model import TINY_AFFINITY, build_cmp

    torch.manual_seed(0)
    ck = save_checkpoint(build_cmp(TINY_AFFINITY), tmp_path / "aff.safetensors")
    out_json = tmp_path / "r.json"
    assert main(["eval", "propagation", "--checkpoint", str(ck), "--quick", "--device", "cpu", "--precision",
                 "fp32", "--datasets", "motorcycle", "--points", "1,3", "--methods", "model,model-scene,nearest",
                 "--json", str(out_json), "--plot", "none"]) == 0
    res = json.loads(out_json.read_text())
    assert res["methods"] == ["model", "model-scene", "nearest"]
    for per in res["datasets"]["motorcycle"]["epe"].values():
        # one point, whole scene moving: the point's motion everywhere, exactly what "nearest" gives
        assert per["model-scene"][0] == pytest.approx(per["nearest"][0], abs=1e-3)


def test_cli_writes_a_plot_only_when_asked(tmp_path, monkeypatch):
    """Evaluating some checkpoint must not overwrite the embedded model's plot in
    checkpoints/eval/: without --plot nothing is drawn; with it, exactly that file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints" / "eval").mkdir(parents=True)
    args = ["eval", "propagation", "--quick", "--datasets", "motorcycle", "--points", "1", "--methods", "zero"]
    assert main(args) == 0
    assert not list(tmp_path.rglob("*.png"))
    assert main([*args, "--plot", "mine.png"]) == 0
    assert [p.name for p in tmp_path.rglob("*.png")] == ["mine.png"]


def test_cli_skips_missing_video_data_and_rejects_bad_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CMP_DATA_DIR", str(tmp_path / "nowhere"))
    code = main(["eval", "propagation", "--methods", "zero,nearest", "--datasets", "video",
                 "--plot", "none"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no dataset could be loaded") and "CMP_DATA_DIR" in err[-1]
    assert main(["eval", "propagation", "--methods", "zero", "--points", "0", "--plot", "none"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --points")
    with pytest.raises(SystemExit):
        main(["eval", "propagation", "--datasets", "kitti"])


def test_synthetic_loader_uses_held_out_seeds_and_skips_when_absent(monkeypatch):
    import sys
    import types

    calls = []

    def make_scene(seed, size=(288, 384), photos=None):
        calls.append((seed, size))
        h, w = size
        flow = np.zeros((h, w, 2), np.float32)
        flow[..., 0] = 2.0
        return dict(image1=_texture(h, w, seed % 7), image2=_texture(h, w, seed % 7), flow=flow,
                    valid=np.ones((h, w), bool), masks=np.zeros((1, h, w), bool))

    fake = types.ModuleType("cmp.scenes.synthetic")
    fake.make_scene = make_scene
    monkeypatch.setitem(sys.modules, "cmp.scenes.synthetic", fake)
    pairs = P.synthetic_pairs(3, size=(96, 128))
    assert [s for s, _ in calls] == [900_000, 900_001, 900_002]
    assert all(p.image.shape == (288, 384, 3) for p in pairs)
    assert np.allclose(pairs[0].flow[..., 0], 6.0)  # 2 px at 128 px width -> 6 px at 384
    monkeypatch.setitem(sys.modules, "cmp.scenes.synthetic", None)  # None makes the import fail
    with pytest.raises(P.DatasetUnavailable):
        P.synthetic_pairs(1)


def test_cli_auto_mode_row_and_set_kinds(tmp_path, capsys):
    import torch

    from cmp.checkpoints import save_checkpoint
    from cmp.model import TINY_AFFINITY, build_cmp

    torch.manual_seed(0)
    ck = save_checkpoint(build_cmp(TINY_AFFINITY), tmp_path / "aff.safetensors")
    out_json = tmp_path / "r.json"
    assert main(["eval", "propagation", "--checkpoint", str(ck), "--quick", "--device", "cpu", "--precision",
                 "fp32", "--datasets", "motorcycle", "--points", "1,10", "--methods",
                 "model,model-scene,model-auto,geodesic", "--json", str(out_json), "--plot", "none"]) == 0
    out = capsys.readouterr().out
    assert "motorcycle [real" in out and "model-auto/geo" in out
    res = json.loads(out_json.read_text())
    assert res["datasets"]["motorcycle"]["kind"].startswith("real")
    for per in res["datasets"]["motorcycle"]["epe"].values():
        # one point is never a camera move; ten random points would be only if they agree and spread
        assert per["model-auto"][0] == per["model"][0]
        assert per["model-auto"][1] in (per["model"][1], per["model-scene"][1]) or \
            min(per["model"][1], per["model-scene"][1]) <= per["model-auto"][1] <= max(per["model"][1], per["model-scene"][1])
