"""Your own photos and masks as a segmentation set (cmp.eval.folder, `eval segmentation --images`)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cmp.cli import main as cli_main
from cmp.eval.folder import FolderError, folder_set
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
    assert rep["dataset"] == "kitchen" and rep["kind"].startswith("your own images")
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
