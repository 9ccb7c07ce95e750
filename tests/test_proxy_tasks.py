"""Invariants of the Gallery's pretext-task generators (cmp/proxy_tasks/)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from cmp import proxy_tasks as pt
from cmp.flow import endpoint_error

D = pt.DIFFICULTIES
IMAGE_TASKS = [n for n, s in pt.TASKS.items() if not s.motion]


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A non-square, textured test image (odd sizes on purpose)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:101, 0:157]
    base = np.stack([x * 1.5, y * 2.4, (x + y) * 0.9], axis=-1)
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("d", D)
def test_rotating_back_recovers_the_image(image, d):
    labels = set()
    for seed in range(6):
        t = pt.rotation(image, d, seed)
        k = t.meta["degrees"] // 90
        assert t.meta["degrees"] == t.meta["classes"][t.meta["label"]]
        np.testing.assert_array_equal(np.rot90(t.input, -k), t.arrays["upright"])
        assert t.input.shape[0] == t.input.shape[1], "square views: the shape must not give the angle away"
        labels.add(t.meta["label"])
    assert len(labels) > 1


@pytest.mark.parametrize("d", D)
@pytest.mark.parametrize("gaps,colour", [(True, "jitter"), (False, "off"), (True, "grey")])
def test_permutation_index_reorders_tiles_back(image, d, gaps, colour):
    t = pt.jigsaw(image, d, seed=5, gaps=gaps, colour=colour)
    g = t.meta["grid"]
    perms = pt.permutation_set(g * g, t.meta["set_size"])
    perm = perms[t.meta["permutation_index"]]
    assert perm.tolist() == t.meta["permutation"]
    np.testing.assert_array_equal(t.arrays["tiles"][np.argsort(perm)], t.arrays["tiles_in_order"])
    if colour == "grey":
        tiles = t.arrays["tiles"]
        assert np.array_equal(tiles[..., 0], tiles[..., 1]) and np.array_equal(tiles[..., 1], tiles[..., 2])
    if not gaps and colour == "off":
        sq, n = t.arrays["square"], t.meta["tile_px"]
        rows = [np.hstack(list(t.arrays["tiles_in_order"][r * g:(r + 1) * g])) for r in range(g)]
        board = np.vstack(rows)
        np.testing.assert_array_equal(board, sq[:g * n, :g * n])


def test_permutation_sets_are_fixed_distinct_permutations():
    for n, size in [(4, 24), (9, 100), (16, 50)]:
        s = pt.permutation_set(n, size)
        assert s.shape == (size, n)
        assert all(sorted(row) == list(range(n)) for row in s.tolist())
        assert len({tuple(r) for r in s.tolist()}) == size
        pt.permutation_set.cache_clear()
        np.testing.assert_array_equal(pt.permutation_set(n, size), s)
    s = pt.permutation_set(9, 100)
    ham = (s[:, None, :] != s[None, :, :]).sum(-1) + 100 * np.eye(100, dtype=int)
    assert ham.min() >= 5, "chosen far apart, so each permutation is distinguishable"


@pytest.mark.parametrize("d", D)
def test_colorization_round_trip(image, d):
    t = pt.colorization(image, d, 1)
    rgb = t.arrays["rgb"]
    back = pt.lab_to_rgb(t.arrays["L"], t.arrays["ab"])
    assert np.abs(back.astype(int) - rgb.astype(int)).max() <= 2
    grey = t.input
    assert np.array_equal(grey[..., 0], grey[..., 2]), "the network is given lightness only"
    step, q = t.meta["ab_step"], t.arrays["ab_target"]
    np.testing.assert_allclose(q / step, np.rint(q / step), atol=1e-4)  # target values are bin centres


@pytest.mark.parametrize("d", D)
def test_inpainting_hole_target_equals_original(image, d):
    t = pt.inpainting(image, d, 2)
    rgb, mask = t.arrays["rgb"], t.arrays["mask"]
    x, y, w, h = t.meta["hole_box"]
    assert mask.sum() == w * h and mask[y:y + h, x:x + w].all()
    np.testing.assert_array_equal(t.arrays["hole"][mask], rgb[mask])
    np.testing.assert_array_equal(t.input[~mask], rgb[~mask])
    assert (t.input[mask] == np.array(t.meta["fill_rgb"], np.uint8)).all()


@pytest.mark.parametrize("d", D)
def test_relative_patch_labels_match_positions(image, d):
    labels = set()
    for seed in range(8):
        t = pt.relative_patch(image, d, seed)
        pos = np.array(t.meta["positions"])
        centre = pos[8]
        p = t.meta["patch_px"]
        for k, (dx, dy) in enumerate(pt.NEIGHBOURS):
            off = pos[k] - centre
            assert tuple(np.rint(off / (pt.SQUARE // 3)).astype(int)) == (dx, dy)
            along = np.array([dx, dy]) != 0
            assert np.all(np.abs(off[along]) >= p), "neighbours never overlap the centre patch"
        assert tuple(t.meta["direction"]) == pt.NEIGHBOURS[t.meta["label"]]
        if not t.meta["colour_dropping"]:
            x, y = pos[t.meta["label"]]
            np.testing.assert_array_equal(t.arrays["patches"][t.meta["label"]], t.arrays["square"][y:y + p, x:x + p])
        labels.add(t.meta["label"])
    assert len(labels) > 2


def test_instance_discrimination_views(image):
    other = image[::-1].copy()
    t = pt.instance_discrimination(image, "hell", 4, other=other)
    assert t.arrays["views"].shape == (3, pt.VIEW_SIDE, pt.VIEW_SIDE, 3)
    assert t.meta["positive_pairs"] == [[0, 1]]
    h, w = pt.fit_image(image).shape[:2]
    for v in t.meta["views"]:
        x, y, cw, ch = v["crop_box"]
        assert 0 <= x and 0 <= y and x + cw <= w and y + ch <= h
    assert not np.array_equal(t.arrays["views"][0], t.arrays["views"][1]), "two different views"
    default = pt.instance_discrimination(image, "easy", 4)  # falls back to the shipped cup image
    assert default.arrays["views"].shape[0] == 3


def test_difficulty_is_monotonic(image):
    tiles = [pt.jigsaw(image, d, 0).meta["grid"] ** 2 for d in D]
    sets = [pt.jigsaw(image, d, 0).meta["set_size"] for d in D]
    assert tiles == sorted(tiles) and tiles[0] < tiles[-1]
    assert all((a, b) < (c, e) for a, b, c, e in zip(tiles, sets, tiles[1:], sets[1:])), "each level harder"
    holes = [pt.inpainting(image, d, 0).meta["hole_fraction"] for d in D]
    assert all(a < b for a, b in zip(holes, holes[1:]))
    points = [pt.motion_propagation(None, d, 0).meta["n_points"] for d in D]
    assert all(a > b for a, b in zip(points, points[1:])) and points[-1] >= 1
    crops = [pt.rotation(image, d, 0).meta["crop_box"][2] for d in D]
    assert crops == sorted(crops, reverse=True) and crops[0] > crops[-1]
    inst = [pt.instance_discrimination(image, d, 0) for d in D]
    assert all(a.meta["min_crop_area"] > b.meta["min_crop_area"]
               and a.meta["jitter_strength"] < b.meta["jitter_strength"] for a, b in zip(inst, inst[1:]))
    col = [pt.colorization(image, d, 0).meta for d in D]
    assert all(a["target_factor"] > b["target_factor"] and a["ab_step"] > b["ab_step"] for a, b in zip(col, col[1:]))
    rel = [pt.relative_patch(image, d, 0).meta["patch_px"] for d in D]
    assert all(a > b for a, b in zip(rel, rel[1:]))
    cnt = [pt.counting(image, d, 0).meta for d in D]
    assert all(a["grid"] <= b["grid"] and a["colour_jitter"] < b["colour_jitter"] for a, b in zip(cnt, cnt[1:]))
    assert cnt[0]["grid"] < cnt[-1]["grid"]


@pytest.mark.parametrize("name", list(pt.TASKS))
def test_deterministic_by_seed(image, name):
    a = pt.generate(name, image, "normal", 11)
    b = pt.generate(name, image, "normal", 11)
    assert a.meta == b.meta
    np.testing.assert_array_equal(a.input, b.input)
    np.testing.assert_array_equal(a.target, b.target)
    for k in a.arrays:
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
    json.dumps(a.to_json())  # metadata is JSON-serialisable
    assert a.input.dtype == np.uint8 and a.input.ndim == 3 and a.input.shape[2] == 3
    assert a.target.dtype == np.uint8 and a.target.ndim == 3 and a.target.shape[2] == 3
    assert a.why and a.shortcut and a.given and a.predict
    if name in ("rotation", "jigsaw", "inpainting", "relative_patch", "instance_discrimination", "counting"):
        others = [pt.generate(name, image, "normal", s) for s in range(12, 16)]
        assert any(o.meta != a.meta for o in others), "different seeds give different instances"


def test_colour_counts_bins_pixels_by_octant():
    img = np.zeros((2, 3, 3), np.uint8)
    img[0, 0] = (255, 0, 0)        # red: bin 4
    img[0, 1] = (127, 128, 200)    # green and blue high: bin 3
    img[1, 2] = (128, 128, 128)    # white octant: bin 7
    expected = np.zeros(8)
    expected[[0, 4, 3, 7]] = [3, 1, 1, 1]
    np.testing.assert_array_equal(pt.colour_counts(img), expected)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data
    return data.chelsea()


def test_counting_tiles_cut_the_view_and_counts_add_up(photo):
    t = pt.counting(photo, "easy", 2)
    g, n = t.meta["grid"], t.meta["tile_px"]
    sq, tiles = t.arrays["square"], t.arrays["tiles"]
    assert len(tiles) == g * g and tiles.shape[1:3] == (n, n) == t.arrays["whole"].shape[:2]
    board = np.vstack([np.hstack(list(tiles[r * g:(r + 1) * g])) for r in range(g)])
    np.testing.assert_array_equal(board, sq[:g * n, :g * n])
    # The tiles' counts add up to the view's exactly; the shrunk whole, scaled back, nearly.
    np.testing.assert_array_equal(t.meta["counts_sum"], pt.colour_counts(sq))
    method = pt.DOWNSAMPLING[t.meta["downsampling"]]
    np.testing.assert_array_equal(t.arrays["whole"], cv2.resize(sq, (n, n), interpolation=method))
    np.testing.assert_allclose(t.meta["counts_whole"], pt.colour_counts(t.arrays["whole"]) * g * g)
    assert t.meta["residual"] < 0.05
    assert t.meta["residual_other"] > 5 * t.meta["residual"], "another image does not add up to these tiles"
    assert len({pt.counting(photo, "easy", s).meta["downsampling"] for s in range(12)}) > 1


def test_counting_colour_jitter_breaks_the_colour_shortcut(photo):
    easy, hell = pt.counting(photo, "easy", 2), pt.counting(photo, "hell", 2)
    g, n = hell.meta["grid"], hell.meta["tile_px"]
    cells = [hell.arrays["square"][r * n:(r + 1) * n, c * n:(c + 1) * n] for r in range(g) for c in range(g)]
    assert not any(np.array_equal(a, b) for a, b in zip(hell.arrays["tiles"], cells)), "every tile recoloured"
    assert hell.meta["residual"] > easy.meta["residual"] + 0.1


def test_guidance_points_carry_the_target_flow():
    for d in D:
        t = pt.motion_propagation(None, d, 3)
        flow, g = t.arrays["flow"], t.arrays["guidance"]
        h, w = flow.shape[:2]
        assert len(g) == t.meta["n_points"] <= pt.GUIDANCE[d]["max_points"]
        xi, yi = g[:, 0].astype(int), g[:, 1].astype(int)
        assert np.array_equal(xi, g[:, 0]) and np.array_equal(yi, g[:, 1])
        assert ((0 <= xi) & (xi < w) & (0 <= yi) & (yi < h)).all()
        np.testing.assert_array_equal(g[:, 2:], flow[yi, xi].astype(np.float64))


def test_motion_propagation_with_engine(tiny_engine):
    t = pt.motion_propagation(None, "normal", 0, engine=tiny_engine)
    pred, flow = t.arrays["prediction"], t.arrays["flow"]
    assert pred.shape == flow.shape
    assert t.meta["epe"] == pytest.approx(endpoint_error(pred, flow))
    assert t.meta["epe_zero_motion"] == pytest.approx(float(np.hypot(flow[..., 0], flow[..., 1]).mean()))
    assert t.target.shape[1] > 2 * flow.shape[1], "prediction shown beside the target"


def test_dense_flow_sign_convention():
    rng = np.random.default_rng(1)
    big = np.clip(rng.normal(128, 60, (140, 180, 3)), 0, 255).astype(np.uint8)
    big = cv2.GaussianBlur(big, (0, 0), 1.5)
    f0 = big[20:120, 20:160]
    f1 = big[20 + 2:120 + 2, 20 - 3:160 - 3]  # content moves right by 3, up by 2
    flow = pt.dense_flow(np.ascontiguousarray(f0), np.ascontiguousarray(f1))
    inner = flow[20:-20, 20:-20].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, axis=0), [3.0, -2.0], atol=0.5)


def test_motion_targets_follow_the_flow():
    seg = pt.moving_segmentation(None, "hell", 0)
    flow, mask = seg.arrays["flow"], seg.arrays["mask"]
    mag = np.hypot(flow[..., 0], flow[..., 1])
    assert 0.02 < mask.mean() < 0.8, "the shipped pair has a moving object on a still background"
    assert (mag[mask] > seg.meta["threshold_px"]).all()
    coarse = pt.moving_segmentation(None, "easy", 0).arrays["mask_target"]
    assert coarse.shape == (flow.shape[0] // 8, flow.shape[1] // 8)
    mp = pt.motion_prediction(None, "normal", 0)
    np.testing.assert_allclose(mp.arrays["flow_target"].mean((0, 1)), flow.mean((0, 1)), atol=1e-3)


def test_bad_input_is_a_one_line_value_error(image):
    for call in (lambda: pt.rotation(image, "impossible", 0),
                 lambda: pt.rotation(image, "easy", -1),
                 lambda: pt.rotation(image, "easy", 1.5),
                 lambda: pt.rotation(image[..., 0], "easy", 0),
                 lambda: pt.rotation(image[:8], "easy", 0),
                 lambda: pt.jigsaw(image, "easy", 0, colour="rainbow"),
                 lambda: pt.generate("sudoku", image, "easy", 0),
                 lambda: pt.generate("jigsaw", None, "easy", 0)):
        with pytest.raises(ValueError) as e:
            call()
        assert "\n" not in str(e.value)
