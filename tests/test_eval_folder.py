"""Your own photos as evaluation sets (cmp.eval.folder): with masks (`eval segmentation --images`), with
their true motion (`eval propagation --pairs`)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from cmp.cli import main as cli_main
from cmp.eval.folder import FolderError, folder_pairs, folder_set, read_motion
from cmp.eval.propagation import EVAL_WIDTH
from cmp.flow import write_flo
from cmp.images import MAX_SIDE
from cmp.masks import read_mask


def _photo(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _disc(h, w, r=None):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.hypot(yy - h / 2, xx - w / 2) < (r or min(h, w) / 4)


def _folder(tmp_path, items, name="mine"):
    root = tmp_path / name
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, rgb, mask in items:
        Image.fromarray(rgb).save(root / "images" / f"{stem}.png")
        if mask is not None:
            Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(root / "masks" / f"{stem}.png")
    return root


# -- reading a mask -------------------------------------------------------------------

def test_read_mask_reads_the_usual_encodings(tmp_path):
    m = _disc(20, 30)
    Image.fromarray(np.where(m, 255, 0).astype(np.uint8)).save(tmp_path / "l.png")
    Image.fromarray(m.astype(np.uint8)).save(tmp_path / "01.png")  # 0 / 1 values
    pal = Image.fromarray(np.where(m, 2, 0).astype(np.uint8), mode="P")  # a DAVIS-style label map
    pal.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    pal.save(tmp_path / "p.png")
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = np.where(m, 255, 0)  # a cut-out: the object is where it is opaque
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "cut.png")
    matte = np.where(m, 200, 90).astype(np.uint8)  # alpha above and below a half
    Image.fromarray(matte).save(tmp_path / "matte.png")
    wide = Image.fromarray(np.where(m, 65535, 0).astype(np.uint16))
    wide.save(tmp_path / "16.png")
    for f in ("l.png", "01.png", "p.png", "cut.png", "matte.png", "16.png"):
        assert np.array_equal(read_mask(tmp_path / f), m), f


def test_read_mask_takes_a_coloured_stroke_and_stays_within_the_decoding_limits(tmp_path, monkeypatch):
    import cmp.images
    from cmp.images import ImageError

    m = _disc(20, 30)
    red = np.zeros((20, 30, 3), np.uint8)
    red[m] = (255, 40, 40)  # a red stroke on black: bright in one channel only
    Image.fromarray(red).save(tmp_path / "red.png")
    assert np.array_equal(read_mask(tmp_path / "red.png"), m)
    monkeypatch.setattr(cmp.images, "MAX_PIXELS", 599)  # one pixel under this mask's 600
    with pytest.raises(ImageError, match="red.png is too large to decode safely"):
        read_mask(tmp_path / "red.png")


def test_motion_regions_are_read_by_the_same_reader(tmp_path):
    from cmp.recipe import load_region

    m = _disc(20, 30)
    Image.fromarray(m.astype(np.uint8)).save(tmp_path / "01.png")  # 0 / 1 values
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere: only the alpha says where the cut-out is
    rgba[..., 3] = np.where(m, 255, 0)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "cut.png")
    for f in ("01.png", "cut.png"):
        assert np.array_equal(load_region(tmp_path / f, (30, 20)), m), f
    assert load_region(tmp_path / "01.png", (60, 40)).sum() == 4 * m.sum()  # resized nearest


def test_read_mask_refuses_a_file_that_is_no_image(tmp_path):
    (tmp_path / "x.png").write_text("not a picture")
    with pytest.raises(ValueError, match="x.png: not a mask image"):
        read_mask(tmp_path / "x.png")


# -- the folder -----------------------------------------------------------------------

def test_folder_set_pairs_images_and_masks_by_name_in_name_order(tmp_path):
    a, b = _photo(40, 60, 1), _photo(50, 50, 2)
    root = _folder(tmp_path, [("b_plant", b, _disc(50, 50)), ("a_cup", a, _disc(40, 60))])
    comps = folder_set(root)
    assert [c.background for c in comps] == ["a_cup.png", "b_plant.png"]
    assert [c.seed for c in comps] == [0, 1]
    assert np.array_equal(comps[0].rgb, a) and np.array_equal(comps[0].mask, _disc(40, 60))
    assert np.array_equal(comps[1].mask, _disc(50, 50))


def test_a_mask_saved_at_another_size_is_brought_to_the_images(tmp_path):
    rgb = _photo(40, 60)
    root = _folder(tmp_path, [("x", rgb, None)])
    Image.fromarray(np.where(_disc(80, 120), 255, 0).astype(np.uint8)).save(root / "masks" / "x.png")
    (c,) = folder_set(root)
    assert c.mask.shape == (40, 60)
    assert (c.mask != _disc(40, 60)).mean() < 0.03


def test_a_photo_over_the_apps_limit_is_shrunk_with_its_mask(tmp_path):
    h, w = 300, MAX_SIDE + 200
    root = _folder(tmp_path, [("big", _photo(h, w), _disc(h, w))])
    (c,) = folder_set(root)
    assert max(c.rgb.shape[:2]) == MAX_SIDE and c.mask.shape == c.rgb.shape[:2]
    assert abs(c.mask.mean() - _disc(h, w).mean()) < 0.01


@pytest.mark.parametrize("case, message", [
    ("no masks folder", "has no masks/ folder"),
    ("mask missing", "no mask in"),
    ("mask without image", "no image in"),
    ("empty mask", "marks no object"),
    ("full mask", "marks the whole image"),
    ("another picture", "has another shape"),
    ("no images", "holds no image"),
])
def test_a_folder_that_cannot_be_a_set_says_why_in_one_line(tmp_path, case, message):
    rgb, m = _photo(40, 60), _disc(40, 60)
    root = _folder(tmp_path, [("x", rgb, m)])
    masks = root / "masks"
    if case == "no masks folder":
        for f in masks.iterdir():
            f.unlink()
        masks.rmdir()
    elif case == "mask missing":
        Image.fromarray(rgb).save(root / "images" / "y.jpg")
    elif case == "mask without image":
        Image.fromarray(np.where(m, 255, 0).astype(np.uint8)).save(masks / "z.png")
    elif case == "empty mask":
        Image.fromarray(np.zeros((40, 60), np.uint8)).save(masks / "x.png")
    elif case == "full mask":
        Image.fromarray(np.full((40, 60), 255, np.uint8)).save(masks / "x.png")
    elif case == "another picture":
        Image.fromarray(np.where(_disc(60, 40), 255, 0).astype(np.uint8)).save(masks / "x.png")
    elif case == "no images":
        (root / "images" / "x.png").unlink()
    with pytest.raises(FolderError, match=message) as exc:
        folder_set(root)
    assert "\n" not in str(exc.value)


# -- the command ----------------------------------------------------------------------

def test_cli_eval_segmentation_runs_on_your_own_folder(tmp_path, capsys):
    h, w = 64, 80
    rgb = np.full((h, w, 3), 40, np.uint8)
    m = _disc(h, w, 14)
    rgb[m] = (220, 200, 40)  # an object the geodesic baseline can find
    root = _folder(tmp_path, [("lemon", rgb, m)], name="kitchen")
    code = cli_main(["eval", "segmentation", "--images", str(root), "--methods", "baseline",
                     "--max-clicks", "5", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    rep = json.loads(out)  # one set: its report alone, as for one built-in set
    assert rep["dataset"] == "kitchen" and rep["kind"].startswith("own (your images in")
    assert rep["methods"]["geodesic baseline"]["images"] == 1
    assert rep["methods"]["geodesic baseline"]["NoC@85"] <= 5
    # with a built-in set too, both are reported
    code = cli_main(["eval", "segmentation", "--images", str(root), "--datasets", "composites", "--n-images", "1",
                     "--methods", "baseline", "--max-clicks", "5", "--json"])
    sets = json.loads(capsys.readouterr().out)["sets"]
    assert code == 0 and list(sets) == ["composites", "kitchen"]


def test_cli_eval_segmentation_refuses_a_bad_folder_in_one_line(tmp_path, capsys):
    code = cli_main(["eval", "segmentation", "--images", str(tmp_path / "nowhere"), "--methods", "baseline"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "has no images/ folder" in err


# -- propagation: your own pairs ------------------------------------------------------

def test_read_motion_reads_flo_pfm_and_npy_with_their_unknowns(tmp_path):
    flow = np.random.default_rng(0).normal(0, 3, (12, 16, 2)).astype(np.float32)
    flo = flow.copy()
    flo[0, 0] = 1e10  # Middlebury's "unknown"
    write_flo(tmp_path / "a.flo", flo)
    f, v = read_motion(tmp_path / "a.flo")
    assert not v[0, 0] and v.sum() == v.size - 1 and np.allclose(f[v], flow[v])
    disp = np.full((12, 16), 7.0, np.float32)
    disp[3, 4] = np.inf  # unknown in a Middlebury disparity map
    disp[5, 6] = 0.0  # unknown too: no match
    cv2.imwrite(str(tmp_path / "b.pfm"), disp)
    f, v = read_motion(tmp_path / "b.pfm")
    assert not v[3, 4] and not v[5, 6] and v.sum() == v.size - 2
    assert np.all(f[v] == [-7.0, 0.0])  # the left view moves left by d to the right view
    nan = flow.copy()
    nan[2, 2, 1] = np.nan
    np.save(tmp_path / "c.npy", nan)
    f, v = read_motion(tmp_path / "c.npy")
    assert not v[2, 2] and np.allclose(f[v], flow[v])
    np.save(tmp_path / "d.npy", np.zeros((4, 4, 3)))
    with pytest.raises(FolderError, match=r"not \(4, 4, 3\)"):
        read_motion(tmp_path / "d.npy")
    (tmp_path / "e.flo").write_bytes(b"junk")
    with pytest.raises(FolderError, match="e.flo: not a readable .flo file"):
        read_motion(tmp_path / "e.flo")
    with pytest.raises(FolderError, match="a true motion is a"):
        read_motion(tmp_path / "x.png")


def _pair_folder(tmp_path, rgb, disp, name="stereo"):
    root = tmp_path / name
    (root / "images").mkdir(parents=True)
    (root / "flow").mkdir()
    Image.fromarray(rgb).save(root / "images" / "left.png")
    cv2.imwrite(str(root / "flow" / "left.pfm"), disp.astype(np.float32))
    return root


def test_folder_pairs_take_a_pair_to_the_benchmarks_width_with_its_motion(tmp_path):
    h, w = 100, 2 * EVAL_WIDTH
    root = _pair_folder(tmp_path, _photo(h, w), np.full((h, w), 10.0))
    (p,) = folder_pairs(root)
    assert p.name == "left.png" and p.image.shape == (h // 2, EVAL_WIDTH, 3)
    assert np.allclose(p.flow[p.valid], [-5.0, 0.0])  # half the size, half the motion


def test_folder_pairs_refuse_a_motion_of_another_shape(tmp_path):
    root = _pair_folder(tmp_path, _photo(40, 60), np.full((60, 40), 3.0))
    with pytest.raises(FolderError, match="left.pfm is 40x60 px, its image left.png 60x40"):
        folder_pairs(root)


def test_cli_eval_propagation_runs_on_your_own_pairs(tmp_path, capsys):
    h, w = 96, 128
    root = _pair_folder(tmp_path, _photo(h, w), np.full((h, w), 4.0), name="desk")
    code = cli_main(["eval", "propagation", "--pairs", str(root), "--methods", "zero,nearest",
                     "--sampling", "random", "--seeds", "2", "--points", "1,3", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    d = json.loads(out)["datasets"]
    assert list(d) == ["desk"] and d["desk"]["kind"].startswith("own (your images in")
    scale = EVAL_WIDTH / w  # the pair at the benchmark's width: 4 px of disparity become 12
    assert d["desk"]["epe"]["random"]["zero"] == pytest.approx([4.0 * scale] * 2, abs=1e-3)
    assert d["desk"]["epe"]["random"]["nearest"] == pytest.approx([0.0, 0.0], abs=1e-4)  # one motion: any point knows it
    code = cli_main(["eval", "propagation", "--pairs", str(tmp_path / "none"), "--methods", "zero"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "has no images/ folder" in err
